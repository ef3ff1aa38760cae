import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { z } from 'zod';
import { type Digest, digest, digestFromPython, digestToPython } from '../../digest.js';
import { ConfigError } from '../../errors.js';
import { parseSize } from '../../util/size.js';
import { parseYaml } from '../../util/yaml.js';
import { configErrorFrom } from '../../util/zod.js';
import { checkLevelsFit, type Levels, validateLevels } from './layout.js';

export const CONFIG_NAME = 'config.yml';

const tool = z.union([
  z.string(),
  z
    .object({
      name: z.string(),
      args: z.array(z.unknown()).optional(),
      kwargs: z.record(z.string(), z.unknown()).nullish(),
    })
    .strict(),
]);

/** Python tarn's StorageConfig (pydantic, extra=forbid): we accept exactly what it accepts. */
const pythonConfig = z
  .object({
    hash: z.union([z.string(), z.object({ name: z.string() }).catchall(z.unknown())]).nullish(),
    levels: z.array(z.number().int()).nullish(),
    locker: tool.nullish(),
    size: tool.nullish(),
    usage: tool.nullish(),
    labels: tool.nullish(),
    free_disk_size: z.union([z.number(), z.string()]).nullish(),
    max_size: z.union([z.number(), z.string()]).nullish(),
  })
  .strict();

export interface LakeConfig {
  levels: Levels;
  /** The digest recorded by the lake (Python's deprecated `hash:`), if any. */
  digest?: Digest;
  minFreeSpace: number;
  maxSize?: number;
  /** Python's StatUsage: last-use marker files under tools/usage. */
  statUsage: boolean;
}

export interface NewLake {
  levels?: Levels;
  algorithm?: string;
  maxSize?: number;
  minFreeSpace?: number;
}

export function readLakeConfig(root: string): LakeConfig | undefined {
  const file = join(root, CONFIG_NAME);
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new ConfigError(`cannot read ${file}: ${(e as Error).message}`);
  }
  return parseLakeConfig(text, file);
}

/** Parses the text of a lake's config.yml (read from disk, or over HTTP/SSH by remote locations). */
export function parseLakeConfig(text: string, file: string): LakeConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text) ?? {};
  } catch (e) {
    throw new ConfigError(`${file} is not valid YAML: ${(e as Error).message}`);
  }
  const parsed = pythonConfig.safeParse(raw);
  if (!parsed.success) throw configErrorFrom(parsed.error, file);
  const c = parsed.data;
  let d: Digest | undefined;
  if (c.hash != null) {
    const { name, ...kwargs } = typeof c.hash === 'string' ? { name: c.hash } : c.hash;
    d = digestFromPython(name, kwargs);
  }
  const levels = validateLevels(c.levels ?? (d ? [1, d.hexLength / 2 - 1] : [1, -1]));
  if (d) checkLevelsFit(levels, d, file, 'the digest config.yml records as hash');
  const usage = typeof c.usage === 'string' ? c.usage : c.usage?.name;
  return {
    levels,
    digest: d,
    minFreeSpace: c.free_disk_size == null ? 0 : parseSize(c.free_disk_size, ['free_disk_size']),
    maxSize: c.max_size == null ? undefined : parseSize(c.max_size, ['max_size']),
    statUsage: usage === 'StatUsage',
  };
}

/**
 * Writes config.yml the way Python tarn's init_storage does (sorted keys, defaults left out),
 * so a lake we create is indistinguishable from one Python created.
 */
export function writeLakeConfig(root: string, lake: NewLake, mode: number): LakeConfig {
  const out: Record<string, unknown> = {};
  const d = lake.algorithm ? digest(lake.algorithm) : undefined;
  if (d && d.name !== 'sha256') {
    const py = digestToPython(d);
    if (!py) {
      throw new ConfigError(
        `a lake keyed by ${d.name} cannot be recorded for Python tarn; use sha256, sha512, blake2b512 or another hashlib digest`,
        ['algorithm'],
      );
    }
    out.hash = py;
  }
  if (lake.minFreeSpace) out.free_disk_size = lake.minFreeSpace;
  out.levels = [...validateLevels(lake.levels ?? [1, -1])];
  // Checked before anything is written: a lake no key fits must not be created.
  checkLevelsFit(
    out.levels as Levels,
    d ?? digest('sha256'),
    join(root, CONFIG_NAME),
    d ? 'the algorithm given' : 'the default, sha256',
  );
  if (lake.maxSize !== undefined) out.max_size = lake.maxSize;
  const text = stringify(out, { indentSeq: false });
  // 'wx': two processes creating the same lake at once must not interleave; the loser reads the winner's file.
  try {
    writeFileSync(join(root, CONFIG_NAME), text, { flag: 'wx', mode: mode & 0o644 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  }
  const written = readLakeConfig(root);
  if (!written) throw new ConfigError(`${join(root, CONFIG_NAME)} vanished while being created`);
  return written;
}
