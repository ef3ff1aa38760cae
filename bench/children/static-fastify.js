// The baseline of the sidecar benchmark: a bare fastify route answering a static 1 KiB body on a
// Unix socket, in its own process like the sidecar. argv: <socket path>.
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import Fastify from 'fastify';

const socket = process.argv[2];
const body = randomBytes(1024);
const app = Fastify({ logger: false });
app.get('/blob', (_req, reply) => {
  reply.header('content-type', 'application/octet-stream').send(body);
});
app.put('/blob', (req, reply) => {
  // Drain the body without keeping it: what the sidecar must at least do with an upload.
  let n = 0;
  req.raw.on('data', (c) => {
    n += c.length;
  });
  req.raw.on('end', () => reply.code(201).send({ size: n }));
});
app.addContentTypeParser('*', (_req, _payload, done) => done(null));
rmSync(socket, { force: true });
await app.listen({ path: socket });
process.stdout.write('ready\n');
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
