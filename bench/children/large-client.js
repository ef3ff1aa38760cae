// A client of the sidecar in a process of its own, as an app container is: one PUT of a file or one
// GET of a key over the Unix socket (undici), timed from the request to the last byte. The bench's
// own process, which also ran the in-process baselines and holds their buffers, made a slower client
// than any app would be. argv: <socket> put <file> | get <key>. Prints {"seconds","bytes","key"}.
import { createReadStream, statSync } from 'node:fs';
import { Agent, request } from 'undici';

const [socket, mode, what] = process.argv.slice(2);
const agent = new Agent({ connect: { socketPath: socket } });
const t = process.hrtime.bigint();
let out;
if (mode === 'put') {
  const size = statSync(what).size;
  const res = await request('http://tarn/v1/blobs', {
    method: 'PUT',
    body: createReadStream(what, { highWaterMark: 1 << 20 }),
    headers: { 'content-length': String(size) },
    dispatcher: agent,
  });
  const body = await res.body.json();
  if (res.statusCode !== 201) throw new Error(`PUT answered ${res.statusCode}: ${JSON.stringify(body)}`);
  out = { bytes: size, key: body.key };
} else {
  const res = await request(`http://tarn/v1/blobs/${what}`, { dispatcher: agent });
  let bytes = 0;
  for await (const chunk of res.body) bytes += chunk.length;
  if (res.statusCode !== 200) throw new Error(`GET answered ${res.statusCode}`);
  out = { bytes, key: what };
}
const seconds = Number(process.hrtime.bigint() - t) / 1e9;
await agent.close();
process.stdout.write(`${JSON.stringify({ seconds, ...out })}\n`);
