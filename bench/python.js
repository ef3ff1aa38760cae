// Python tarn, the original, as a peer: its own timings, taken inside one Python process.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PYTHON = join(
  process.env.TARN_CACHE_DIR ?? join(homedir(), '.cache', 'tarn-ts'),
  'py',
  'bin',
  'python',
);

export function pythonTarn() {
  return existsSync(PYTHON);
}

export function runPython(kind, args) {
  const script = fileURLToPath(new URL('./python_peer.py', import.meta.url));
  const r = spawnSync(PYTHON, [script, kind, JSON.stringify(args)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python peer failed: ${r.stderr}`);
  return JSON.parse(r.stdout);
}
