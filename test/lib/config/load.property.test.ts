import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  buildLocation,
  ConfigError,
  type Location,
  type LocationNode,
  openConfig,
  parseConfig,
} from '@tarnjs/tarn';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  lakeRoot,
  locationNode,
  SECRET_ENV,
  SECRET_FILE,
  storageConfig,
} from '../../helpers/config-trees.js';
import { params, timed } from '../../helpers/fuzz.js';
import { tempDir } from '../../helpers/tmp.js';

const root = tempDir('tarn-build-');

/** A fresh folder for the lakes of one run (relative roots resolve against it), holding the secret file. */
function freshBase(): string {
  const base = mkdtempSync(join(root, 'run-'));
  writeFileSync(join(base, SECRET_FILE), 'file-secret\n');
  return base;
}

/** The kind of location a node builds (the short forms: a folder is a disk lake, a list a fanout). */
function kindOf(node: unknown, locations: Record<string, unknown> = {}, seen = new Set<string>()): string {
  if (typeof node === 'string') return 'disk';
  if (Array.isArray(node)) return 'fanout';
  const n = node as { kind?: string; ref?: string };
  if (n.kind === undefined || n.kind === 'ref') {
    const name = n.ref as string;
    if (seen.has(name)) return 'cycle';
    seen.add(name);
    return kindOf(locations[name], locations, seen);
  }
  return n.kind;
}

/** Every location of a built tree, to close them all. */
function* tree(l: Location): Generator<Location> {
  yield l;
  const any = l as unknown as {
    levels?: Array<{ location: Location }>;
    members?: Location[];
    inner?: Location;
  };
  for (const level of any.levels ?? []) yield* tree(level.location);
  for (const m of any.members ?? []) yield* tree(m);
  if (any.inner) yield* tree(any.inner);
}

describe('building configs from untrusted input (property-based)', () => {
  it('a valid config builds, without connecting, to a tree of the kinds it names, or gives a ConfigError with a path', async () => {
    await fc.assert(
      fc.asyncProperty(storageConfig(), async (raw) => {
        const base = freshBase();
        const config = parseConfig(raw);
        let built: ReturnType<typeof openConfig>;
        try {
          built = openConfig(config, { base, env: SECRET_ENV });
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError);
          // Each problem is named where it is: in the tree, a named location, the memo index or the algorithm.
          expect(['location', 'locations', 'memo', 'algorithm']).toContain((e as ConfigError).path[0]);
          return;
        }
        const locations = (config.locations ?? {}) as Record<string, unknown>;
        expect(built.storage.location.kind).toBe(kindOf(config.location, locations));
        if (config.memo) expect(built.memoIndex?.kind).toBe(kindOf(config.memo.index, locations));
        const all = [...tree(built.storage.location), ...(built.memoIndex ? tree(built.memoIndex) : [])];
        await Promise.all(all.map((l) => l.close()));
      }),
      params(100),
    );
  });

  it('a name used by several refs is built once: the same instance', () => {
    const base = freshBase();
    fc.assert(
      fc.property(locationNode({ refs: false }), fc.integer({ min: 2, max: 5 }), (target, uses) => {
        const refs = Array.from({ length: uses }, () => ({ ref: 'shared' }));
        let built: Location;
        try {
          built = buildLocation(refs as LocationNode, {
            base,
            env: SECRET_ENV,
            locations: { shared: target as LocationNode },
          });
        } catch (e) {
          expect(e).toBeInstanceOf(ConfigError);
          return;
        }
        const members = (built as unknown as { members: Location[] }).members;
        expect(members).toHaveLength(uses);
        for (const m of members) expect(m).toBe(members[0]);
      }),
      params(100),
    );
  });

  it('refs forming any graph (cycles, long chains, missing names) build or give a ConfigError ending in ref, in bounded time', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5_000 }),
        fc.array(fc.nat(), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        (n, targets, leafAtEnd) => {
          // Names n0..n{n-1}; each refers to the next by default (a chain), some to an arbitrary one.
          const locations: Record<string, LocationNode> = {};
          for (let i = 0; i < n; i++) locations[`n${i}`] = { ref: `n${i + 1}` };
          for (const t of targets) locations[`n${t % n}`] = { ref: `n${(t * 7) % (n + 1)}` };
          if (leafAtEnd) locations[`n${n}`] = { kind: 'redis', url: 'redis://127.0.0.1:9' };
          const { ms, value, error } = timed(() => buildLocation({ ref: 'n0' }, { locations }));
          expect(ms).toBeLessThan(2_000);
          if (error) {
            expect(error).toBeInstanceOf(ConfigError);
            const path = (error as ConfigError).path;
            expect(path.length).toBeGreaterThan(0);
          } else {
            expect(value?.kind).toBe('redis');
          }
        },
      ),
      params(100, {
        // A chain of 20,000 refs overflowed the stack (RangeError) before building was depth-limited.
        examples: [[20_000, [0], true]],
      }),
    );
  });

  it('a ref to a name that is not an own entry of locations (constructor, __proto__, toString) is a ConfigError naming it', () => {
    fc.assert(
      fc.property(
        fc.constantFrom<string>(
          'constructor',
          '__proto__',
          'toString',
          'hasOwnProperty',
          'valueOf',
          'isPrototypeOf',
          'nope',
        ),
        fc.dictionary(
          fc.constantFrom('undefined', 'a', 'b'),
          fc.constant({ kind: 'redis' } as LocationNode),
          {
            maxKeys: 3,
          },
        ),
        (name, locations) => {
          let error: unknown;
          try {
            buildLocation({ levels: [{ ref: name }], kind: 'levels' }, { locations });
          } catch (e) {
            error = e;
          }
          expect(error).toBeInstanceOf(ConfigError);
          expect((error as ConfigError).path).toEqual(['location', 'levels', 0, 'ref']);
          expect((error as ConfigError).message).toContain(JSON.stringify(name));
        },
      ),
      params(100, {
        // `{ ref: constructor }` found Object.prototype.constructor, then built the entry named "undefined".
        examples: [['constructor', { undefined: { kind: 'redis' as const } }]],
      }),
    );
  });

  it('a location node that contains itself, given to buildLocation directly, is a ConfigError', () => {
    fc.assert(
      fc.property(fc.constantFrom('list', 'fanout', 'small', 'levels'), (kind) => {
        const node: Record<string, unknown> | unknown[] =
          kind === 'list'
            ? []
            : kind === 'fanout'
              ? { kind, members: [] }
              : kind === 'small'
                ? { kind, maxSize: 1 }
                : { kind, levels: [] };
        if (Array.isArray(node)) node.push(node);
        else if (kind === 'small') node.location = node;
        else ((node.members ?? node.levels) as unknown[]).push(node);
        const { error } = timed(() => buildLocation(node as LocationNode));
        expect(error).toBeInstanceOf(ConfigError);
      }),
      params(20),
    );
  });

  // Was a bug (location/disk/index.ts, DiskLocation's constructor): a lake folder that cannot be
  // created threw the raw fs error (ENAMETOOLONG, ENOTDIR, EACCES...) instead of a ConfigError naming
  // the location. Minimal counterexamples: `{ location: "<a file>/lake" }` (ENOTDIR) and a root
  // of 256 characters (ENAMETOOLONG).
  it('a disk root that cannot be created (too long, below a file) is a ConfigError', () => {
    const base = freshBase();
    writeFileSync(join(base, 'a-file'), '');
    fc.assert(
      fc.property(
        fc.oneof(
          fc.integer({ min: 256, max: 2_000 }).map((n) => 'x'.repeat(n)),
          lakeRoot.map((r) => `a-file/${r}`),
          fc.constantFrom(SECRET_FILE, 'a-file'),
        ),
        (root) => {
          const { error } = timed(() => buildLocation({ kind: 'disk', root }, { base }));
          expect(error).toBeInstanceOf(ConfigError);
          expect((error as ConfigError).path[0]).toBe('location');
        },
      ),
      params(50, { examples: [['a-file/lake'], ['x'.repeat(256)]] }),
    );
  });
});
