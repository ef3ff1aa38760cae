#!/usr/bin/env node
// The image's entrypoint: `tarn serve` without the rest of the CLI. The server handles SIGTERM,
// SIGINT and SIGHUP itself once it listens; until then (while the modules load and the tree is
// built) the default handlers stop the process, which has bound nothing yet.
const { sidecarMain } = await import('../dist/cli.js');
const code = await sidecarMain(process.argv.slice(2), { stderr: process.stderr, env: process.env });
await Promise.all([process.stdout, process.stderr].map((s) => new Promise((done) => s.write('', done))));
process.exit(code);
