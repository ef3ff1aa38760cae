// `npm run bench`: every benchmark, each beside baselines measured in the same run.
// Environment: BENCH_LARGE_MIB (default 1024), BENCH_SMALL_COUNT (10000), BENCH_ROUNDS (3).
import { mkdirSync, writeFileSync } from 'node:fs';
import { diskLarge } from './cases/disk-large.js';
import { diskSmall } from './cases/disk-small.js';
import { machine } from './lib.js';

const mib = Number(process.env.BENCH_LARGE_MIB ?? 1024);
const count = Number(process.env.BENCH_SMALL_COUNT ?? 10_000);
const rounds = Number(process.env.BENCH_ROUNDS ?? 3);

const env = machine();
console.log('# tarn benchmarks');
console.log(JSON.stringify(env));
const results = { date: new Date().toISOString(), machine: env, cases: {} };
results.cases['large/tmp'] = await diskLarge({ base: '/tmp', mib, rounds });
results.cases['small/tmp'] = await diskSmall({ base: '/tmp', count, rounds });
results.cases['small/shm'] = await diskSmall({ base: '/dev/shm', count, rounds });

mkdirSync(new URL('./results/', import.meta.url), { recursive: true });
const file = new URL(`./results/${results.date.replace(/[:.]/g, '-')}.json`, import.meta.url);
writeFileSync(file, JSON.stringify(results, null, 2));
console.log(`\nresults: ${file.pathname}`);
