// A process that memoises with smartCache() and no target: the environment says where
// (TARN_SIDECAR, else TARN_STORAGE, else ./.tarn). Appends its pid to $CALLS when it computes.
import { appendFileSync } from 'node:fs';
import { smartCache } from '@tarnjs/tarn';

const cached = smartCache()(async function slowSquare(x) {
  appendFileSync(process.env.CALLS, `${process.pid}\n`);
  await new Promise((r) => setTimeout(r, Number(process.env.SLOW ?? 0)));
  return { square: x * x, by: process.pid };
});
const result = await cached(Number(process.env.X ?? 7));
process.stdout.write(JSON.stringify({ result, stats: cached.stats }));
process.exit(0);
