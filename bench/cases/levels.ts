// Levels (copy-on-read): small values with a Redis cache over a disk lake, and a large file copied
// from a lower disk lake into an upper one, each beside the raw operations in the same run.
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, rmSync, statfsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DiskLocation, HashKeyStorage, Levels, RedisLocation, Small } from '@tarnjs/tarn';
import { Redis } from 'ioredis';
import { startRedis } from '../../test/bed/services.js';
import { fsType, medianOf, print, type Row, row, scratch, secondsOf } from './common.ts';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Runs `count` tasks with at most `concurrency` in flight. */
async function pool(count: number, concurrency: number, task: (i: number) => Promise<unknown>) {
  let next = 0;
  const worker = async () => {
    while (next < count) await task(next++);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

const sh = (cmd: string) => {
  const r = spawnSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
};

/** A deterministic xorshift32 generator: the same sizes and bytes on every run. */
function prng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

/** Drops these files from the page cache (posix_fadvise DONTNEED), so only they read cold. */
function evict(paths: string[]): boolean {
  const script =
    'import os,sys\nfor p in sys.stdin.read().split("\\n"):\n  if p:\n    fd=os.open(p,os.O_RDONLY)\n    os.posix_fadvise(fd,0,0,os.POSIX_FADV_DONTNEED)\n    os.close(fd)\n';
  const r = spawnSync('python3', ['-c', script], {
    input: paths.join('\n'),
    stdio: ['pipe', 'ignore', 'pipe'],
  });
  return r.status === 0;
}

/**
 * `count` values of 1–16 KiB: reads of all keys from a disk lake alone, and through
 * Levels(Small(Redis, 100 KiB), disk) cold (every read a disk hit + a copy into Redis) and warm
 * (every read a Redis hit), beside raw `fs.readFile` and ioredis `getBuffer` of the same values.
 */
export async function levelsSmall({ count, rounds }: { count: number; rounds: number }) {
  const base = tmpdir();
  const s = scratch(base, 'bench-levels-small-');
  const redis = await startRedis();
  try {
    const next = prng(0x7a2b);
    const values = Array.from({ length: count }, () => {
      const size = KiB + (next() % (15 * KiB + 1));
      const b = Buffer.allocUnsafe(size);
      for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE(next(), i);
      for (let i = size - (size % 4); i < size; i++) b[i] = next() & 0xff;
      return b;
    });
    const bytes = values.reduce((n, v) => n + v.length, 0);
    const lake = join(s.dir, 'lake');
    const disk = new HashKeyStorage(new DiskLocation(lake));
    const keys: string[] = new Array(count);
    await pool(count, 8, async (i) => {
      keys[i] = await disk.write(values[i] as Buffer);
    });
    const paths = await Promise.all(keys.map((k) => disk.read(k, (v) => v.path as string)));
    const key = (i: number) => keys[i] as string;

    // Raw ioredis in db 0; tarn's Redis cache in db 1 (flushed before every cold pass).
    const raw = new Redis(redis.url);
    for (let i = 0; i < count; i += 500)
      await raw.mset(values.slice(i, i + 500).flatMap((v, j) => [`raw:${i + j}`, v]));
    const cacheDb = new Redis(`${redis.url}/1`);
    const check = (i: number, b: Buffer | Uint8Array | null) => {
      if (b?.length !== (values[i] as Buffer).length) throw new Error(`value ${i}: wrong length`);
    };
    const canEvict = evict(paths.slice(0, 1));

    const names: string[] = [];
    const times: Record<string, number[]> = {};
    const stats: Record<string, unknown> = {};
    const add = (name: string, t: number) => {
      if (!times[name]) {
        times[name] = [];
        names.push(name);
      }
      times[name].push(t);
    };
    const ccs = [8, 1];
    for (let r = 0; r < rounds; r++) {
      for (const c of ccs) {
        add(
          `raw fs readFile, ${c} in flight`,
          await secondsOf(() => pool(count, c, async (i) => check(i, await readFile(paths[i] as string)))),
        );
        add(
          `tarn disk, ${c} in flight`,
          await secondsOf(() =>
            pool(count, c, async (i) => check(i, await disk.read(key(i), (v) => v.bytes()))),
          ),
        );
        add(
          `raw ioredis getBuffer, ${c} in flight`,
          await secondsOf(() => pool(count, c, async (i) => check(i, await raw.getBuffer(`raw:${i}`)))),
        );
        await cacheDb.flushdb();
        const levels = new Levels(
          new Small(new RedisLocation({ url: `${redis.url}/1`, prefix: 'tarn:' }), { maxSize: 100 * KiB }),
          new DiskLocation(lake),
        );
        const storage = new HashKeyStorage(levels);
        add(
          `tarn levels cold, ${c} in flight`,
          await secondsOf(() =>
            pool(count, c, async (i) => check(i, await storage.read(key(i), (v) => v.bytes()))),
          ),
        );
        const cold = levels.stats;
        add(
          `tarn levels warm, ${c} in flight`,
          await secondsOf(() =>
            pool(count, c, async (i) => check(i, await storage.read(key(i), (v) => v.bytes()))),
          ),
        );
        const both = levels.stats;
        await storage.close();
        stats[`round ${r}, ${c} in flight`] = { cold, afterWarm: both };
        const copied = Object.values(cold.copies).reduce((n, x) => n + x, 0);
        const faults = Object.values(both.faults).reduce((n, x) => n + x, 0);
        if (copied !== count || faults !== 0)
          console.log(
            `  note: cold pass copied ${copied} of ${count}, ${faults} faults: ${JSON.stringify(both)}`,
          );
        if (canEvict) {
          sh('sync'); // dirty pages cannot be dropped
          evict(paths);
          add(
            `tarn disk, page cache evicted, ${c} in flight`,
            await secondsOf(() =>
              pool(count, c, async (i) => check(i, await disk.read(key(i), (v) => v.bytes()))),
            ),
          );
        }
      }
    }
    raw.disconnect();
    cacheDb.disconnect();
    const med = (name: string) => medianOf(times[name] as number[]);
    const rows: Row[] = names.map((n) => row(n, med(n), `${(count / med(n)).toFixed(0)} reads/s`));
    const ratios: Array<[string, number]> = [];
    for (const c of ccs) {
      const d = med(`tarn disk, ${c} in flight`);
      ratios.push(
        [`levels warm / disk alone (time), ${c} in flight`, med(`tarn levels warm, ${c} in flight`) / d],
        [`levels cold / disk alone (time), ${c} in flight`, med(`tarn levels cold, ${c} in flight`) / d],
        [`tarn disk / raw fs readFile, ${c} in flight`, d / med(`raw fs readFile, ${c} in flight`)],
        [
          `tarn levels warm / raw ioredis getBuffer, ${c} in flight`,
          med(`tarn levels warm, ${c} in flight`) / med(`raw ioredis getBuffer, ${c} in flight`),
        ],
      );
      if (canEvict)
        ratios.push([
          `levels warm / disk alone with evicted page cache, ${c} in flight`,
          med(`tarn levels warm, ${c} in flight`) / med(`tarn disk, page cache evicted, ${c} in flight`),
        ]);
    }
    print(
      `Levels(Small(Redis), disk): ${count} values of 1–16 KiB (${(bytes / MiB).toFixed(0)} MiB), disk lake on ${base} (${fsType(base)}), Redis on loopback; medians of ${rounds} interleaved rounds`,
      rows,
      ratios,
    );
    console.log('  (ratios are time ÷ time: below 1 means the first is faster)');
    return { count, bytes, base, rows, ratios: Object.fromEntries(ratios), stats };
  } finally {
    await redis.stop();
    s.remove();
  }
}

/**
 * A large file in a lower disk lake: copy-on-read into a fresh upper lake (until the value is
 * served, copied and verified), beside a plain read + tarn write into another lake, `cp`, a stream
 * copy without hashing, and `openssl dgst -sha256`.
 */
export async function levelsLarge({ mib, rounds }: { mib: number; rounds: number }) {
  const base = tmpdir();
  const fsStat = statfsSync(base);
  const free = fsStat.bavail * fsStat.bsize;
  const need = Math.max(3 * GiB, 2.5 * mib * MiB);
  if (free < need) {
    const msg = `skipped: ${(free / GiB).toFixed(1)} GiB free on ${base}, need ${(need / GiB).toFixed(1)} GiB`;
    console.log(`\n## Levels large file\n  ${msg}`);
    return { skipped: msg };
  }
  const s = scratch(base, 'bench-levels-large-');
  try {
    // Random-looking data, written in 64 MiB pieces, then stored in the lower lake (the source file
    // is removed: every variant reads the lower lake's blob, to need only twice the size on disk).
    const file = join(s.dir, 'big.bin');
    const piece = Buffer.alloc(64 * MiB);
    for (let i = 0; i < piece.length; i += 4) piece.writeUInt32LE((i * 2654435761) >>> 0, i);
    const out = createWriteStream(file);
    for (let i = 0; i < Math.ceil(mib / 64); i++) {
      piece.writeUInt32LE(i, 0);
      const part = i === Math.ceil(mib / 64) - 1 && mib % 64 ? piece.subarray(0, (mib % 64) * MiB) : piece;
      if (!out.write(part)) await new Promise<void>((r) => out.once('drain', () => r()));
    }
    await new Promise((r) => out.end(r));
    const lower = join(s.dir, 'lower');
    const key = await new HashKeyStorage(new DiskLocation(lower)).write(file);
    rmSync(file);
    const blob = await new HashKeyStorage(new DiskLocation(lower)).read(key, (v) => v.path as string);
    const bytes = mib * MiB;
    const upper = join(s.dir, 'upper');
    const dest = join(s.dir, 'dest');
    const clean = () => {
      rmSync(upper, { recursive: true, force: true });
      rmSync(dest, { recursive: true, force: true });
    };
    let coldStats: unknown;
    const variants: Record<string, () => Promise<unknown> | unknown> = {
      'tarn Levels copy-on-read (copy + verify, then served)': async () => {
        const levels = new Levels(new DiskLocation(upper), new DiskLocation(lower));
        const path = await new HashKeyStorage(levels).read(key, (v) => v.path);
        coldStats = levels.stats;
        if (!path?.startsWith(upper)) throw new Error(`served from ${path}, not the upper lake`);
      },
      'fs read stream + tarn write(stream) into another lake': async () => {
        const got = await new HashKeyStorage(new DiskLocation(dest)).write(
          createReadStream(blob, { highWaterMark: MiB }),
        );
        if (got !== key) throw new Error('key mismatch');
      },
      'cp (in-kernel copy, no hash)': () => sh(`cp ${blob} ${dest}`),
      'fs read stream → write stream (no hash)': () =>
        pipeline(createReadStream(blob, { highWaterMark: MiB }), createWriteStream(dest)),
      'openssl dgst -sha256 (hash only)': () => sh(`openssl dgst -sha256 ${blob}`),
    };
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
    for (let r = 0; r < rounds; r++) {
      for (const [name, run] of Object.entries(variants)) {
        clean();
        sh('sync');
        (times[name] as number[]).push(await secondsOf(run));
      }
      clean();
    }
    const med = (name: string) => medianOf(times[name] as number[]);
    const rate = (sec: number) => `${(bytes / MiB / sec).toFixed(0)} MiB/s`;
    const rows = Object.keys(variants).map((n) => row(n, med(n), rate(med(n))));
    const cor = med('tarn Levels copy-on-read (copy + verify, then served)');
    const ratios: Array<[string, number]> = [
      [
        'copy-on-read / read + tarn write',
        cor / med('fs read stream + tarn write(stream) into another lake'),
      ],
      ['copy-on-read / cp', cor / med('cp (in-kernel copy, no hash)')],
      ['copy-on-read / stream copy (no hash)', cor / med('fs read stream → write stream (no hash)')],
      ['copy-on-read / openssl dgst', cor / med('openssl dgst -sha256 (hash only)')],
    ];
    print(
      `Levels(disk, disk): ${mib} MiB file copied up on read, on ${base} (${fsType(base)}); fresh upper lake and sync before every variant, medians of ${rounds} interleaved rounds`,
      rows,
      ratios,
    );
    console.log(`  levels stats of the last copy-on-read: ${JSON.stringify(coldStats)}`);
    return { mib, base, rows, ratios: Object.fromEntries(ratios), stats: coldStats };
  } finally {
    s.remove();
  }
}
