#!/usr/bin/env node
const controller = new AbortController();
process.once('SIGINT', () => controller.abort(new Error('SIGINT')));
process.once('SIGTERM', () => controller.abort(new Error('SIGTERM')));
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
});
// Loaded after the handlers are in place, so a Ctrl-C while the modules load is still handled.
const { main } = await import('../dist/cli/main.js');
const code = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  signal: controller.signal,
});
// The command is done: a client still reconnecting to an unreachable server (e.g. after
// `tarn describe`) must not keep the process alive. Let stdout and stderr drain first.
await Promise.all([process.stdout, process.stderr].map((s) => new Promise((done) => s.write('', done))));
process.exit(code);
