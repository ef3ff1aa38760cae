// `npm run bench`: every benchmark, each beside baselines measured in the same run.
// Environment: BENCH_LARGE_MIB (default 1024), BENCH_SMALL_COUNT (10000), BENCH_ROUNDS (3),
// BENCH_CASES (comma-separated names, default all: large/tmp, small/tmp, small/shm, remote,
// levels/small, levels/large, memo/hit), BENCH_REMOTE_COUNT (1 KiB values per remote location,
// default 500), BENCH_LEVELS_COUNT (1–16 KiB values for levels/small, default 10000),
// BENCH_LARGE_LEVELS_MIB (file size for levels/large, default 1024), BENCH_MEMO_CALLS (serial calls
// per variant and round for memo/hit, default 20000).
import { mkdirSync, writeFileSync } from 'node:fs';
import { diskLarge } from './cases/disk-large.js';
import { diskSmall } from './cases/disk-small.js';
import { machine, xfsMount } from './lib.js';

const mib = Number(process.env.BENCH_LARGE_MIB ?? 1024);
const count = Number(process.env.BENCH_SMALL_COUNT ?? 10_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

/** One operation at a time on a lake under `base`, beside Python tarn. */
const serialOn = async (base) =>
  (await import('./cases/serial.ts')).serial({
    base,
    count: Number(process.env.BENCH_SERIAL_COUNT ?? 2000),
    calls: Number(process.env.BENCH_MEMO_CALLS ?? 20_000),
    rounds,
  });

const env = machine();
console.log('# tarn benchmarks');
console.log(JSON.stringify(env));
const results = { date: new Date().toISOString(), machine: env, cases: {} };
const cases = {
  'large/tmp': () => diskLarge({ base: '/tmp', mib, rounds }),
  // The same on a loop-mounted XFS with reflinks: a write by path clones the file and hashes the clone.
  'large/xfs': async () => {
    const m = xfsMount(3 * mib + 512);
    if (!m) return { skipped: 'no XFS' };
    try {
      return await diskLarge({ base: m.dir, mib, rounds });
    } finally {
      m.remove();
    }
  },
  'small/tmp': () => diskSmall({ base: '/tmp', count, rounds }),
  'small/shm': () => diskSmall({ base: '/dev/shm', count, rounds }),
  // On the test bed's servers (npm run provision); TypeScript, run through tsx.
  remote: async () => (await import('./cases/remote.ts')).remote(),
  // Copy-on-read: Levels(Small(Redis), disk) for small values (Redis from the test bed), Levels(disk, disk) for a large file.
  'levels/small': async () =>
    (await import('./cases/levels.ts')).levelsSmall({
      count: Number(process.env.BENCH_LEVELS_COUNT ?? 10_000),
      rounds,
    }),
  'levels/large': async () =>
    (await import('./cases/levels.ts')).levelsLarge({
      mib: Number(process.env.BENCH_LARGE_LEVELS_MIB ?? 1024),
      rounds,
    }),
  // One operation at a time (1 KiB values, smartCache hits) beside Python tarn: per-operation latency.
  'serial/tmp': () => serialOn('/tmp'),
  'serial/shm': () => serialOn('/dev/shm'),
  // smartCache hits on a disk lake, beside a plain call, a Map memo, fs reads and v8.deserialize.
  'memo/hit': async () =>
    (await import('./cases/memo.ts')).memoHit({
      calls: Number(process.env.BENCH_MEMO_CALLS ?? 20_000),
      rounds,
    }),
  // The sidecar over its Unix socket beside a bare fastify route, the library in-process and redis-benchmark.
  sidecar: async () =>
    (await import('./cases/sidecar.ts')).sidecarBench({
      count: Number(process.env.BENCH_SIDECAR_COUNT ?? 20_000),
      largeMib: mib,
      rounds,
    }),
};
const wanted = process.env.BENCH_CASES?.split(',') ?? Object.keys(cases);
for (const name of wanted) {
  if (!cases[name]) throw new Error(`unknown case ${name}; known: ${Object.keys(cases).join(', ')}`);
  results.cases[name] = await cases[name]();
}

mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(`./results/${results.date.replace(/[:.]/g, '-')}.json`, import.meta.url);
writeFileSync(file, JSON.stringify(results, null, 2));
console.log(`\nresults: ${file.pathname}`);
