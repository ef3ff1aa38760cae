// Relays connections made to a Unix socket to a TCP address: run inside a network namespace
// (nsenter --net=...), it lets a process of the host's namespace reach a server that listens only
// inside it (the node's API server), since a Unix socket is a file, not a network address.
// argv: <unix socket path> <host> <port>. Stops on SIGTERM, removing the socket.
import { rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';

const [path, host, port] = process.argv.slice(2);
rmSync(path, { force: true });
const server = createServer((client) => {
  const upstream = connect(Number(port), host);
  client.pipe(upstream).pipe(client);
  const end = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', end);
  upstream.on('error', end);
  client.on('close', end);
  upstream.on('close', end);
});
server.listen(path);
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
