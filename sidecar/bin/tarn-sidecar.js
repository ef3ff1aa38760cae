#!/usr/bin/env node
// The image's entrypoint: `tarn serve` without the rest of the CLI. The server handles SIGTERM,
// SIGINT and SIGHUP itself from its first (synchronous) step. Before that, while the modules load,
// these handlers stop the process: in a container node is PID 1, and the kernel drops a signal that
// PID 1 has no handler for, so without them a SIGTERM sent while loading would be ignored until the
// kubelet's SIGKILL. Nothing is bound yet, so there is nothing to clean up.
const early = (signal) => process.exit(128 + (signal === 'SIGINT' ? 2 : 15));
process.on('SIGTERM', early);
process.on('SIGINT', early);
const { sidecarMain } = await import('../dist/cli.js');
process.off('SIGTERM', early);
process.off('SIGINT', early);
const code = await sidecarMain(process.argv.slice(2), { stderr: process.stderr, env: process.env });
await Promise.all([process.stdout, process.stderr].map((s) => new Promise((done) => s.write('', done))));
process.exit(code);
