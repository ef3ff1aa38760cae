#!/usr/bin/env node
import { main } from '../dist/cli/main.js';

const controller = new AbortController();
process.once('SIGINT', () => controller.abort(new Error('SIGINT')));
process.once('SIGTERM', () => controller.abort(new Error('SIGTERM')));
process.stdout.on('error', (e) => {
  if (e.code === 'EPIPE') process.exit(0);
});
process.exitCode = await main(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
  stdin: process.stdin,
  env: process.env,
  signal: controller.signal,
});
