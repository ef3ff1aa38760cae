// The end-to-end test's app: what a lab's container does with the sidecar, driven over HTTP by
// the test (port 8080, inside the node's namespace). It talks to the sidecar only through
// $TARN_SIDECAR, with the library's SidecarLocation and smartCache(), as any app would.
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { HashKeyStorage, SidecarLocation, smartCache } from '@tarnjs/tarn';

// Without the sidecar (the storage was deleted and the operator took it out), the app still runs
// and says so on every storage route.
const socket = process.env.TARN_SIDECAR;
const storage = socket
  ? new HashKeyStorage(new SidecarLocation(socket))
  : new Proxy({}, { get: () => () => Promise.reject(new Error('no sidecar: $TARN_SIDECAR is not set')) });
let computed = 0;
const slowSquare = smartCache()(async function slowSquare(x) {
  computed++;
  await new Promise((r) => setTimeout(r, 1500));
  return { square: x * x, by: process.env.HOSTNAME };
});

/** `size` bytes from a seed: the same on every replica, so the test knows the key. */
function bytesOf(seed, size) {
  const out = Buffer.allocUnsafe(size);
  let block = createHash('sha256').update(seed).digest();
  for (let at = 0; at < size; at += 32) {
    block.copy(out, at, 0, Math.min(32, size - at));
    block = createHash('sha256').update(block).digest();
  }
  return out;
}
const sha = (b) => createHash('sha256').update(b).digest('hex');

const routes = {
  '/healthz': async () => ({ ok: true }),
  '/put': async (q) => ({ key: await storage.write(bytesOf(q.get('seed'), Number(q.get('size')))) }),
  '/get': async (q) => {
    const bytes = await storage.read(q.get('key'), (v) => v.bytes());
    return { sha256: sha(bytes), size: bytes.length };
  },
  // The zero-copy read: the value's file in the lake, mounted read-only here, read directly.
  '/path': async (q) => {
    const value = await storage.read(q.get('key'));
    try {
      const bytes = value.path ? readFileSync(value.path) : await value.bytes();
      return { path: value.path ?? null, sha256: sha(bytes), size: bytes.length };
    } finally {
      await value.close();
    }
  },
  '/memo': async (q) => ({ result: await slowSquare(Number(q.get('x'))) }),
  // An upload that takes its time (1 MiB every 200 ms): the test deletes the pod in the middle.
  '/slow-put': async (q) => {
    const size = Number(q.get('size'));
    const all = bytesOf(q.get('seed'), size);
    async function* slowly() {
      for (let at = 0; at < size; at += 1 << 20) {
        yield all.subarray(at, Math.min(size, at + (1 << 20)));
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    return { key: await storage.write(slowly()) };
  },
  '/stats': async () => ({ computed, host: process.env.HOSTNAME }),
};

// A Job's step: one call of the memoised function, its outcome in the termination message
// (what the kubelet reports in the pod's status), then exit: the sidecar is stopped after it.
if (process.argv[2] === 'once') {
  const result = await slowSquare(Number(process.env.X));
  writeFileSync('/dev/termination-log', JSON.stringify({ result, computed }));
  process.exit(0);
}

createServer(async (req, res) => {
  const url = new URL(req.url, 'http://app');
  const route = routes[url.pathname];
  try {
    if (!route) throw Object.assign(new Error('no such route'), { status: 404 });
    const body = JSON.stringify(await route(url.searchParams));
    res.writeHead(200, { 'content-type': 'application/json' }).end(body);
  } catch (e) {
    res
      .writeHead(e.status ?? 500, { 'content-type': 'application/json' })
      .end(JSON.stringify({ error: e.message, code: e.code }));
  }
}).listen(8080);
process.on('SIGTERM', () => process.exit(0));
