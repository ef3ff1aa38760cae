// One operation at a time, as a script's loop or a memoised function calls the library: per-operation
// latency of 1 KiB values on a disk lake in os.tmpdir(), beside Python tarn 0.14 doing the same in its
// own process, raw fs calls, and a contains (the floor of a write whose value is already stored).
import { randomBytes } from 'node:crypto';
import {
  closeSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { DiskLocation, HashKeyStorage, smartCache } from '@tarnjs/tarn';
import { pythonTarn, runPython } from '../python.js';
import { fsType, medianOf, scratch } from './common.ts';
import { profile, square } from './memo.ts';

/** Per-operation time of one variant: mean and median, in microseconds. */
export interface Latency {
  mean: number;
  p50: number;
}

async function timed<T>(items: readonly T[], op: (x: T) => Promise<unknown> | unknown): Promise<Latency> {
  const times = new Float64Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const t = process.hrtime.bigint();
    await op(items[i] as T);
    times[i] = Number(process.hrtime.bigint() - t) / 1e3;
  }
  const sorted = [...times].sort((a, b) => a - b);
  return { mean: times.reduce((a, b) => a + b, 0) / times.length, p50: sorted[sorted.length >> 1] as number };
}

/**
 * `count` values of 1 KiB, `rounds` rounds (medians of each variant's mean and p50). Every round
 * starts from fresh lakes, so a "new" write is new. Python tarn runs once per round after ours.
 */
export async function serial({
  base,
  count,
  calls,
  rounds,
}: {
  base: string;
  count: number;
  calls: number;
  rounds: number;
}) {
  const s = scratch(base, 'bench-serial-');
  const results: Record<string, Latency[]> = {};
  const add = (name: string, l: Latency) => {
    results[name] ??= [];
    results[name].push(l);
  };
  try {
    const srcDir = join(s.dir, 'src');
    mkdirSync(srcDir);
    const files = Array.from({ length: count }, (_, i) => {
      const f = join(srcDir, String(i));
      writeFileSync(f, randomBytes(1024));
      return f;
    });
    const values = files.map((f) => readFileSync(f));
    for (let r = 0; r < rounds; r++) {
      // The kernel's floor for a new small file, in the same folder layout (256 shards, a .tmp).
      const raw = join(s.dir, `raw-${r}`);
      for (let i = 0; i < 256; i++)
        mkdirSync(join(raw, i.toString(16).padStart(2, '0')), { recursive: true });
      mkdirSync(join(raw, '.tmp'));
      const shard = (i: number) => join(raw, (i % 256).toString(16).padStart(2, '0'));
      const indices = values.map((_, i) => i);
      add(
        'raw writeFileSync of a new file',
        await timed(indices, (i) => writeFileSync(join(shard(i), `w${i}`), values[i] as Buffer)),
      );
      add(
        'raw temp + write + link + unlink (sync)',
        await timed(indices, (i) => {
          const tmp = join(raw, '.tmp', `t${i}`);
          const fd = openSync(tmp, 'wx', 0o444);
          writeSync(fd, values[i] as Buffer);
          closeSync(fd);
          linkSync(tmp, join(shard(i), `l${i}`));
          unlinkSync(tmp);
        }),
      );

      const lake = new DiskLocation(join(s.dir, `lake-${r}`));
      const storage = new HashKeyStorage(lake);
      const keys: string[] = [];
      add('write(path), new', await timed(files, async (f) => keys.push(await storage.write(f))));
      const fresh = Array.from({ length: count }, () => randomBytes(1024));
      add('write(bytes), new', await timed(fresh, (v) => storage.write(v)));
      add('write(bytes), stored', await timed(values, (v) => storage.write(v)));
      add('write(path), stored', await timed(files, (f) => storage.write(f)));
      add('contains', await timed(keys, (k) => storage.contains(k)));
      add('read -> path', await timed(keys, (k) => storage.read(k, (v) => v.path)));
      add('read -> bytes', await timed(keys, (k) => storage.read(k, (v) => v.bytes())));
      add(
        'read -> bytes, verify',
        await timed(keys, (k) => storage.read(k, (v) => v.bytes(), { verify: true })),
      );
      const paths = keys.map((k) => lake.pathOf(k));
      add('raw readFile of the blob', await timed(paths, (p) => readFile(p)));
      add('raw readFileSync of the blob', await timed(paths, (p) => readFileSync(p)));

      const cache = smartCache(join(s.dir, `memo-${r}`));
      const record = cache(profile);
      const sq = cache(square);
      for (const [name, fn] of [
        ['smartCache hit, object', record],
        ['smartCache hit, number', sq],
      ] as const) {
        await fn(7);
        await fn(7);
        add(
          name,
          await timed(
            Array.from({ length: calls }, () => 7),
            (x) => fn(x),
          ),
        );
      }
      await storage.close();

      if (pythonTarn()) {
        const py = runPython('serial', {
          root: join(s.dir, `py-lake-${r}`),
          cache: join(s.dir, `py-memo-${r}`),
          files,
          calls,
        }) as Record<string, { mean: number; p50: number }>;
        for (const [name, l] of Object.entries(py))
          add(`Python tarn ${name}`, { mean: l.mean * 1e6, p50: l.p50 * 1e6 });
      }
    }
    const summary: Record<string, Latency> = {};
    for (const [name, ls] of Object.entries(results))
      summary[name] = { mean: medianOf(ls.map((l) => l.mean)), p50: medianOf(ls.map((l) => l.p50)) };

    console.log(
      `\n## one at a time: ${count} x 1 KiB, ${calls} smartCache calls, lake on ${base} (${fsType(base)}); medians of ${rounds} rounds, µs per operation`,
    );
    const w = Math.max(...Object.keys(summary).map((k) => k.length));
    for (const [name, l] of Object.entries(summary))
      console.log(
        `  ${name.padEnd(w)}  mean ${l.mean.toFixed(1).padStart(8)}  p50 ${l.p50.toFixed(1).padStart(8)}`,
      );
    const ratios: Array<[string, number]> = [];
    const vs = (ours: string, theirs: string, label = `${ours}: Python rate ÷ ours`) => {
      const a = summary[ours];
      const b = summary[`Python tarn ${theirs}`];
      // Rate ratio: our ops/s over Python's; above 1, we are faster.
      if (a && b) ratios.push([label, b.mean / a.mean]);
    };
    vs('write(path), new', 'write(path), new', 'write(path) new: ours ÷ Python rate (target ≥ 2)');
    vs('write(bytes), new', 'write(bytes), new', 'write(bytes) new: ours ÷ Python rate');
    vs('read -> path', 'read -> path', 'read → path: ours ÷ Python rate (target ≥ 1)');
    vs('read -> bytes', 'read -> bytes', 'read → bytes: ours ÷ Python rate (target ≥ 1)');
    vs(
      'smartCache hit, object',
      'smart_cache hit, object',
      'smartCache hit, object: ours ÷ Python rate (target ≥ 5)',
    );
    vs('smartCache hit, number', 'smart_cache hit, number', 'smartCache hit, number: ours ÷ Python rate');
    const floor = summary['raw temp + write + link + unlink (sync)'];
    const fresh = summary['write(path), new'];
    if (floor && fresh) ratios.push(['write(path) new ÷ its syscalls done raw', fresh.mean / floor.mean]);
    const stored = summary['write(bytes), stored'];
    const contains = summary.contains;
    if (stored && contains)
      ratios.push(['write(bytes) of a stored value ÷ contains (target ≤ 1)', stored.mean / contains.mean]);
    for (const [label, v] of ratios) console.log(`  ratio ${label}: ${v.toFixed(2)}x`);
    return { summary, ratios: Object.fromEntries(ratios) };
  } finally {
    s.remove();
  }
}
