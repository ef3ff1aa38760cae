import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { inCI } from '../bed/binaries.js';
import { run } from './spawn.js';

const CACHE = process.env.TARN_CACHE_DIR ?? join(homedir(), '.cache', 'tarn-ts');
const PYTHON = join(CACHE, 'py', 'bin', 'python');
const SCRIPT = fileURLToPath(new URL('./pytarn.py', import.meta.url));

/**
 * The venv with Python tarn that scripts/provision.sh installs. In CI its absence fails the
 * suite; on a developer machine without it the compatibility tests are skipped, loudly.
 */
export function pythonTarn(): string | undefined {
  if (existsSync(PYTHON)) return PYTHON;
  if (inCI()) {
    throw new Error(`Python tarn is not installed at ${PYTHON}; run \`npm run provision\``);
  }
  console.warn(`skipping Python tarn compatibility tests: ${PYTHON} is missing (npm run provision)`);
  return undefined;
}

export type PyOp =
  | { op: 'init'; root: string; levels?: number[] }
  | { op: 'write'; root: string; data: string }
  | { op: 'write_file'; root: string; path: string }
  | { op: 'read'; root: string; key: string }
  | { op: 'keys'; root: string }
  | { op: 'delete'; root: string; key: string };

/** Runs the ops in one Python process and returns their results. */
export async function py(ops: PyOp[]): Promise<unknown[]> {
  const python = pythonTarn();
  if (!python) throw new Error('Python tarn is not available');
  const r = await run(python, [SCRIPT], { input: JSON.stringify(ops) });
  if (r.code !== 0) throw new Error(`python tarn failed (${r.code}):\n${r.stderr}`);
  return JSON.parse(r.stdout) as unknown[];
}

export const b64 = (data: Buffer | string) => Buffer.from(data).toString('base64');
