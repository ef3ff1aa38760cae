import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';
import { ConfigError, DiskLocation, HashKeyStorage, InvalidKeyError } from '@tarnjs/tarn';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  keyToParts,
  type LakeEntry,
  type Levels,
  validateLevels,
  walkLake,
} from '../../../../src-lib/dist/location/disk/layout.js';
import { nastyChar, nastyString, params, rejected, thrown } from '../../../helpers/fuzz.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

const base = tempDir();

const HEX = '0123456789abcdef';
const hexChar = fc.constantFrom(...HEX);
const hex = (min: number, max: number) => fc.string({ unit: hexChar, minLength: min, maxLength: max });

/** Valid layouts: positive byte counts, optionally ending in -1 (the rest); Python's and odd ones. */
const levelsArb: fc.Arbitrary<number[]> = fc.oneof(
  fc.constantFrom<number[]>([1, -1], [2, -1], [1, 1, -1], [1, 31], [32], [-1], [4, 28], [1, 1, 1, 1, -1]),
  fc
    .tuple(fc.array(fc.integer({ min: 1, max: 4 }), { maxLength: 3 }), fc.boolean())
    .filter(([fixed, rest]) => rest || fixed.length > 0)
    .map(([fixed, rest]) => (rest ? [...fixed, -1] : fixed)),
);

/** Whether sha256 keys (64 hex characters) fit the layout, as a lake requires at open. */
const fitsSha256 = (levels: Levels) =>
  levels.at(-1) === -1 ? prefixOf(levels) < 64 : prefixOf(levels) === 64;

const prefixOf = (levels: Levels) => levels.reduce((a, l) => a + (l > 0 ? l * 2 : 0), 0);
const fixedOf = (levels: Levels) => (levels.at(-1) === -1 ? undefined : prefixOf(levels));

/** A key the layout takes: exactly its length, or (ending in -1) an even length beyond its prefix. */
function validKey(levels: Levels): fc.Arbitrary<string> {
  const fixed = fixedOf(levels);
  if (fixed !== undefined) return hex(fixed, fixed);
  return fc
    .integer({ min: 1, max: 40 })
    .chain((pairs) => hex(prefixOf(levels) + pairs * 2, prefixOf(levels) + pairs * 2));
}

/** Strings near a valid key (one character replaced, cut, padded, upper-cased) and arbitrary text. */
function keyish(levels: Levels): fc.Arbitrary<string> {
  const key = validKey(levels);
  return fc.oneof(
    key,
    fc.tuple(key, fc.nat(), nastyChar).map(([k, at, c]) => {
      const i = at % k.length;
      return k.slice(0, i) + c + k.slice(i + 1);
    }),
    fc
      .tuple(
        key,
        fc.constantFrom('../', '/', '\0', './', '..', ''),
        fc.constantFrom('/..', '/', '\0', '0', '00', ''),
      )
      .map(([k, before, after]) => before + k + after),
    key.map((k) => k.toUpperCase()),
    key.map((k) => k.slice(0, -1)),
    hex(0, 90),
    nastyString(80),
  );
}

/** Whether the layout takes the key (the specification, written independently of keyToParts). */
function takes(levels: Levels, key: string): boolean {
  if (!/^(?:[0-9a-f]{2})+$/.test(key)) return false;
  const fixed = fixedOf(levels);
  return fixed !== undefined ? key.length === fixed : key.length > prefixOf(levels);
}

describe('disk layout: keys and paths (property-based)', () => {
  it('keyToParts splits exactly the keys the layout takes into its components, and refuses the rest', () => {
    fc.assert(
      fc.property(
        levelsArb.chain((levels) => fc.tuple(fc.constant(levels), keyish(levels))),
        ([levels, key]) => {
          let parts: string[];
          try {
            parts = keyToParts(key, levels);
          } catch (e) {
            expect(e).toBeInstanceOf(InvalidKeyError);
            expect(takes(levels, key)).toBe(false);
            return;
          }
          expect(takes(levels, key)).toBe(true);
          expect(parts.join('')).toBe(key);
          expect(parts).toHaveLength(levels.length);
          parts.forEach((part, i) => {
            expect(part).toMatch(/^[0-9a-f]+$/);
            const level = levels[i] as number;
            if (level > 0) expect(part).toHaveLength(level * 2);
          });
        },
      ),
      params(500),
    );
  });

  it('validateLevels returns a valid layout unchanged, or throws a ConfigError', () => {
    const layoutish = fc.oneof(
      levelsArb,
      fc.array(fc.oneof(fc.integer({ min: -3, max: 5 }), fc.double(), fc.constant(-1)), { maxLength: 5 }),
      fc.anything(),
    );
    fc.assert(
      fc.property(layoutish, (levels) => {
        let out: Levels;
        try {
          out = validateLevels(levels);
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError);
          return;
        }
        expect(out).toBe(levels);
        expect(out.length).toBeGreaterThan(0);
        out.forEach((l, i) => {
          expect(Number.isInteger(l) && (l > 0 || (l === -1 && i === out.length - 1))).toBe(true);
        });
      }),
      params(500),
    );
  });

  it('walkLake yields every key of a tree exactly once and nothing else, whatever foreign entries it holds', async () => {
    const junkName = fc.oneof(
      fc.constantFrom('config.yml', '.tmp', 'tools', '.', '..', 'A0', 'aB', 'a', 'abc', 'zz', '0g', ''),
      nastyString(8),
    );
    await fc.assert(
      fc.asyncProperty(
        levelsArb.chain((levels) =>
          fc.tuple(
            fc.constant(levels),
            fc.uniqueArray(validKey(levels), { maxLength: 30 }),
            fc.array(fc.tuple(fc.nat(), junkName, fc.boolean(), fc.boolean()), { maxLength: 10 }),
            fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 5 }),
          ),
        ),
        async ([levels, keys, junk, misplaced]) => {
          // An in-memory lake: folder (relative path) -> entries, as a location lists them.
          const tree = new Map<string, Map<string, LakeEntry>>();
          const add = (folder: string, entry: LakeEntry) => {
            const entries = tree.get(folder) ?? new Map<string, LakeEntry>();
            tree.set(folder, entries);
            if (!entries.has(entry.name)) entries.set(entry.name, entry);
          };
          for (const key of keys) {
            const parts = keyToParts(key, levels);
            parts.forEach((name, depth) => {
              const folder = parts.slice(0, depth).join('/');
              const last = depth === parts.length - 1;
              add(folder, { name, dir: !last, blob: last });
            });
          }
          const folders = ['', ...tree.keys()];
          // Names that can never be a component: not lower-case hex of the right length.
          for (const [at, name, dir, blob] of junk) {
            const folder = folders[at % folders.length] as string;
            const depth = folder === '' ? 0 : folder.split('/').length;
            const level = levels[depth];
            const component =
              /^[0-9a-f]+$/.test(name) &&
              (level === -1 ? name.length % 2 === 0 : level !== undefined && name.length === level * 2);
            if (!component) add(folder, { name, dir, blob });
          }
          // Valid component names in the wrong role: a file where a folder belongs.
          for (const [k, at] of misplaced) {
            if (keys.length === 0 || levels.length < 2) break;
            const parts = keyToParts(keys[k % keys.length] as string, levels);
            const depth = at % (parts.length - 1);
            const folder = parts.slice(0, depth).join('/');
            const name = parts[depth] as string;
            const sibling = name.replace(/^./, (c) => HEX[(HEX.indexOf(c) + 1) % 16] as string);
            add(folder, { name: sibling, dir: false, blob: true });
          }
          const listed: string[] = [];
          for await (const key of walkLake(levels, (folder) => [...(tree.get(folder)?.values() ?? [])]))
            listed.push(key);
          expect(listed.sort()).toEqual([...keys].sort());
        },
      ),
      params(300),
    );
  });
});

describe('a disk lake given untrusted keys (property-based)', () => {
  const lakes: DiskLocation[] = [];
  const LAYOUTS: number[][] = [[1, -1], [2, -1], [1, 1, -1], [1, 31], [32], [-1]];
  beforeAll(() => {
    for (const levels of LAYOUTS) lakes.push(new DiskLocation(freshPath(base), { levels }));
  });

  it('pathOf maps a key the layout takes to its path strictly inside the lake, and refuses anything else', () => {
    fc.assert(
      fc.property(
        fc.nat(LAYOUTS.length - 1).chain((i) => fc.tuple(fc.constant(i), keyish(LAYOUTS[i] as number[]))),
        ([i, key]) => {
          const lake = lakes[i] as DiskLocation;
          const levels = lake.config.levels;
          const error = thrown(() => lake.pathOf(key));
          if (!takes(levels, key)) {
            expect(error).toBeInstanceOf(InvalidKeyError);
            return;
          }
          expect(error).toBeUndefined();
          const path = lake.pathOf(key);
          const rel = relative(lake.root, path);
          expect(isAbsolute(rel)).toBe(false);
          expect(path.startsWith(lake.root + sep)).toBe(true);
          const components = rel.split(sep);
          expect(components).toEqual(keyToParts(key, levels));
          for (const c of components) expect(c === '.' || c === '..' || c === '').toBe(false);
        },
      ),
      params(1000),
    );
  });

  /** Every entry below root, recursively, with its kind: a snapshot to compare. */
  function snapshot(root: string): string[] {
    const out: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        out.push(`${relative(root, p)}${e.isDirectory() ? '/' : ''}`);
        if (e.isDirectory()) walk(p);
      }
    };
    walk(root);
    return out.sort();
  }

  it('refuses a malformed key in every operation with InvalidKeyError, and changes nothing on disk', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    await storage.write(Buffer.from('hello'));
    const lake = storage.location as DiskLocation;
    const before = snapshot(root);
    // Malformed for the storage: anything but 64 hex digits (in any case, as users may type them).
    const badKey = keyish([32]).filter((k) => !/^[0-9a-fA-F]{64}$/.test(k));
    await fc.assert(
      fc.asyncProperty(badKey, async (key) => {
        const attempts: Array<() => Promise<unknown>> = [
          () => storage.readOrNull(key),
          () => storage.read(key),
          () => storage.contains(key),
          () => storage.delete(key),
          () => storage.touch(key),
          () => storage.write(Buffer.from('x'), { expectedKey: key }),
        ];
        // The lake alone knows no digest: it takes any key its layout [1, -1] takes (e.g. "e46d").
        if (!takes(lake.config.levels, key)) {
          attempts.push(
            () => lake.read(key),
            () => lake.contains(key),
            () => lake.delete(key),
            () => lake.touch(key),
            () => lake.stage({ key }),
          );
        }
        for (const attempt of attempts) expect(await rejected(attempt())).toBeInstanceOf(InvalidKeyError);
        expect(snapshot(root)).toEqual(before);
      }),
      params(150),
    );
  });

  it('lists exactly the keys stored under its layout, each once, past foreign files and folders', async () => {
    await fc.assert(
      fc.asyncProperty(
        // A lake's layout must fit its digest (sha256 here: 64 hex characters), and so must its keys.
        levelsArb.filter(fitsSha256).chain((levels) =>
          fc.tuple(
            fc.constant(levels),
            fc.uniqueArray(hex(64, 64), { maxLength: 12 }),
            fc.uniqueArray(
              fc.constantFrom('A0', 'ab.tmp', 'zz', 'abc', '0', 'config.yaml', '.hidden', 'tools2'),
              {
                maxLength: 4,
              },
            ),
          ),
        ),
        async ([levels, keys, junk]) => {
          const lake = new DiskLocation(freshPath(base), { levels });
          for (const key of keys) {
            const path = lake.pathOf(key);
            mkdirSync(join(path, '..'), { recursive: true });
            writeFileSync(path, key);
          }
          for (const name of junk) {
            // Foreign entries at the root and inside the first folder of the layout, if any.
            writeFileSync(join(lake.root, name), '');
            const first =
              keys[0] && levels.length > 1
                ? join(lake.root, keyToParts(keys[0], levels)[0] as string)
                : undefined;
            if (first) mkdirSync(join(first, `${name}.d`), { recursive: true });
          }
          const listed: string[] = [];
          for await (const key of lake.keys()) listed.push(key);
          expect(listed.sort()).toEqual([...keys].sort());
          for (const key of keys) expect(await lake.contains(key)).toBe(true);
        },
      ),
      params(40),
    );
  });
});
