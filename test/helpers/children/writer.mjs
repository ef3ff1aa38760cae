// A separate process writing values to a lake: used by the concurrency, capacity and crash tests.
// argv: <root> <json list of {seed, size}> [slowMs]
import { createHash } from 'node:crypto';
import { HashKeyStorage } from '@tarnjs/tarn';

const [root, specs, slowMs] = process.argv.slice(2);

function pseudoRandom(seed, size) {
  const out = Buffer.allocUnsafe(size);
  let state = createHash('sha512').update(seed).digest();
  for (let at = 0; at < size; at += state.length) {
    state.copy(out, at, 0, Math.min(state.length, size - at));
    state = createHash('sha512').update(state).digest();
  }
  return out;
}

// Says on stderr how many 1 MiB chunks the storage has taken (`took N`): a test that kills the
// writer can then kill it at a known point of the write.
async function* slowly(data, delay) {
  let n = 0;
  for (let at = 0; at < data.length; at += 1 << 20) {
    yield data.subarray(at, at + (1 << 20));
    process.stderr.write(`took ${++n}\n`);
    await new Promise((r) => setTimeout(r, delay));
  }
}

const storage = new HashKeyStorage(root);
const results = [];
for (const { seed, size } of JSON.parse(specs)) {
  const data = pseudoRandom(seed, size);
  try {
    const key = await storage.write(slowMs ? slowly(data, Number(slowMs)) : data);
    results.push({ seed, key });
    if (slowMs) process.stdout.write(`${JSON.stringify({ seed, key })}\n`);
  } catch (e) {
    results.push({ seed, error: e.code ?? e.message });
  }
}
if (!slowMs) process.stdout.write(JSON.stringify(results));
