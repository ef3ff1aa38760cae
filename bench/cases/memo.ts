// Memoisation: the cost of a smartCache hit on a disk lake, for a ~0.8 KiB object and for a number,
// beside a plain call, a Map memo, fs reads of the two files a hit reads, and v8.deserialize alone.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deserialize, serialize } from 'node:v8';
import { DiskLocation, HashKeyStorage, type Location, smartCache } from '@tarnjs/tarn';
import { fsType, medianOf, print, type Row, row, scratch, secondsOf } from './common.ts';

/** A cheap function with a small result: an object of 20 fields (776 bytes v8-serialised). */
export function profile(id: number) {
  return {
    id,
    name: `user-${id}`,
    email: `user-${id}@example.com`,
    active: id % 2 === 0,
    score: id * 1.5,
    created: `2026-01-${String((id % 28) + 1).padStart(2, '0')}T00:00:00.000Z`,
    tags: ['alpha', 'beta', 'gamma', 'delta'],
    address: { street: `${id} Main Street`, city: 'Springfield', zip: String(10000 + id), country: 'US' },
    roles: ['reader', 'writer'],
    quota: { used: id * 1024, limit: 1 << 30 },
    bio: 'Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris.',
    locale: 'en-US',
    timezone: 'America/Chicago',
    theme: 'dark',
    lastLogin: 1_767_225_600_000 + id,
    logins: id * 7,
    flags: { beta: true, newsletter: false, twoFactor: true },
    avatar: `https://cdn.example.com/avatars/${id}.png`,
    notes: 'Prefers email contact; account migrated from the legacy system in 2024; no open tickets.',
    version: 3,
  };
}

/** A tiny result: a number. */
export function square(x: number) {
  return x * x;
}

type Fn<A, R> = (a: A) => R;

/**
 * `calls` serial awaited calls per variant, `rounds` interleaved rounds, medians: a smartCache hit
 * (disk lake in os.tmpdir(), index + storage side by side) for an object and for a number, beside
 * the plain call, a Map memo (what p-memoize gives), `fs.readFile` of the index entry + value blob
 * (the two files a hit reads) and of the blob alone, the same with `readFileSync`, `v8.deserialize` of the blob's bytes, and the
 * parts of a hit: `keyOf`, the index entry read (as smartCache does it, through a stream; and
 * through `bytes()` for comparison), the verified blob read.
 */
export async function memoHit({ calls, rounds }: { calls: number; rounds: number }) {
  const base = tmpdir();
  const s = scratch(base, 'bench-memo-');
  try {
    const cacheDir = join(s.dir, 'cache');
    const cache = smartCache(cacheDir);
    const index = new DiskLocation(join(cacheDir, 'index'));
    const indexLocation: Location = index; // as smartCache holds it (reads take `{ digest: null }`)
    const storage = new HashKeyStorage(join(cacheDir, 'storage'));
    let sink: unknown;

    const variants: Record<string, () => Promise<unknown> | unknown> = {};
    const order: string[] = [];
    const info: Record<string, unknown> = {};

    const setUp = async <A, R>(label: string, fn: Fn<A, R>, arg: A) => {
      const cached = cache(fn);
      // Warm-up: the first call parses the function's source, computes and stores; the second is a hit.
      const first = await cached(arg);
      const again = await cached(arg);
      if (JSON.stringify(again) !== JSON.stringify(first)) throw new Error(`${label}: the hit differs`);
      if (cached.stats.hits !== 1 || cached.stats.misses !== 1)
        throw new Error(`${label}: warm-up stats ${JSON.stringify(cached.stats)}`);
      const key = await cached.keyOf(arg);
      const indexPath = index.pathOf(key);
      const entryBytes = await readFile(indexPath);
      const entry = JSON.parse(entryBytes.toString('utf8')) as { value: string };
      const blobPath = await storage.read(entry.value, (v) => v.path as string);
      if (!blobPath) throw new Error(`${label}: no blob for ${entry.value}`);
      const blob = await readFile(blobPath);
      if (!blob.equals(serialize(fn(arg)))) throw new Error(`${label}: the blob is not v8.serialize(result)`);
      info[label] = { serialisedBytes: blob.length, indexEntryBytes: entryBytes.length, key, blobPath };

      const memo = new Map<A, R>(); // p-memoize's default: the first argument is the key
      const mapMemo = async (a: A): Promise<R> => {
        let v = memo.get(a);
        if (v === undefined) {
          v = fn(a);
          memo.set(a, v);
        }
        return v;
      };
      const add = (name: string, one: () => Promise<unknown> | unknown) => {
        const full = `${label}: ${name}`;
        order.push(full);
        variants[full] = async () => {
          for (let i = 0; i < calls; i++) sink = await one();
        };
      };
      add('smartCache hit', () => cached(arg));
      add('plain call (awaited)', () => fn(arg));
      add('Map memo (async, p-memoize style)', () => mapMemo(arg));
      add('fs readFile index entry + blob', async () => {
        await readFile(indexPath);
        return readFile(blobPath);
      });
      add('fs readFile blob', () => readFile(blobPath));
      // The same syscalls on the main thread, without libuv's thread-pool round trip per call.
      add('fs readFileSync index entry + blob', () => {
        readFileSync(indexPath);
        return readFileSync(blobPath);
      });
      add('v8.deserialize of the blob bytes', () => deserialize(blob));
      add('part: keyOf(args)', () => cached.keyOf(arg));
      add('part: index read + stream drain', async () => {
        const v = await indexLocation.read(key, { digest: null });
        if (!v) throw new Error('index entry gone');
        const parts: Buffer[] = [];
        try {
          for await (const chunk of v.stream()) parts.push(chunk as Buffer);
        } finally {
          await v.close();
        }
        return Buffer.concat(parts);
      });
      // What the index read would cost through `bytes()` (one readFile-like pass) instead of a stream.
      add('alt: index read + bytes()', async () => {
        const v = await indexLocation.read(key, { digest: null });
        if (!v?.bytes) throw new Error('index entry gone');
        try {
          return await v.bytes();
        } finally {
          await v.close();
        }
      });
      add('part: storage read bytes() verified', () =>
        storage.read(entry.value, (v) => v.bytes(), { verify: true }),
      );
      return cached;
    };

    const object = await setUp('object', profile, 42);
    const number = await setUp('number', square, 7);

    const times: Record<string, number[]> = Object.fromEntries(order.map((n) => [n, []]));
    for (let r = 0; r < rounds; r++)
      for (const name of order)
        (times[name] as number[]).push(await secondsOf(variants[name] as () => unknown));
    void sink;
    const expected = 1 + rounds * calls;
    for (const [label, c] of [
      ['object', object],
      ['number', number],
    ] as const)
      if (c.stats.hits !== expected || c.stats.misses !== 1)
        console.log(`  note: ${label} stats ${JSON.stringify(c.stats)}, expected ${expected} hits`);

    const med = (name: string) => medianOf(times[name] as number[]);
    const us = (name: string) => (med(name) / calls) * 1e6;
    const rows: Row[] = order.map((n) =>
      row(
        n,
        med(n),
        `${(calls / med(n)).toFixed(0).padStart(9)} calls/s  ${us(n).toFixed(2).padStart(8)} µs/call`,
      ),
    );
    const ratios: Array<[string, number]> = [];
    for (const label of ['object', 'number']) {
      const hit = med(`${label}: smartCache hit`);
      ratios.push(
        [`${label}: hit / plain call`, hit / med(`${label}: plain call (awaited)`)],
        [`${label}: hit / Map memo`, hit / med(`${label}: Map memo (async, p-memoize style)`)],
        [
          `${label}: hit / fs readFile index entry + blob`,
          hit / med(`${label}: fs readFile index entry + blob`),
        ],
        [`${label}: hit / fs readFile blob`, hit / med(`${label}: fs readFile blob`)],
        [
          `${label}: index read, stream drain / bytes()`,
          med(`${label}: part: index read + stream drain`) / med(`${label}: alt: index read + bytes()`),
        ],
        [
          `${label}: hit / sum of parts (keyOf + index read + verified blob read + deserialize)`,
          hit /
            (med(`${label}: part: keyOf(args)`) +
              med(`${label}: part: index read + stream drain`) +
              med(`${label}: part: storage read bytes() verified`) +
              med(`${label}: v8.deserialize of the blob bytes`)),
        ],
      );
    }
    const sizes = ['object', 'number']
      .map((l) => `${l} ${(info[l] as { serialisedBytes: number }).serialisedBytes} B`)
      .join(', ');
    print(
      `smartCache hit: ${calls} serial awaited calls per variant, results v8-serialised (${sizes}), disk lake on ${base} (${fsType(base)}); medians of ${rounds} interleaved rounds`,
      rows,
      ratios,
    );
    console.log('  (ratios are time ÷ time: above 1 means the hit is slower)');
    return { calls, rounds, base, info, rows, ratios: Object.fromEntries(ratios) };
  } finally {
    s.remove();
  }
}
