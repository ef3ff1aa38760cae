import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * One temp folder per run: every folder the tests, the bed's servers and the programs they start
 * make under the system's temp folder lands in it (TMPDIR is inherited by the workers and by every
 * process they spawn), and it goes when the run ends. Without it, throwaway lakes and MinIO's data
 * (over a GiB per run) piled up in /tmp, since vitest ends its workers before their own cleanup.
 */
export default function setup(): () => void {
  const run = mkdtempSync(join(tmpdir(), 'tarn-run-'));
  // As open as /tmp itself: the bed's sshd logs in as its own user, and some tests run as nobody.
  chmodSync(run, 0o1777);
  const before = process.env.TMPDIR;
  process.env.TMPDIR = run;
  return () => {
    if (before === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = before;
    try {
      rmSync(run, { recursive: true, force: true, maxRetries: 3 });
    } catch (e) {
      // A tmpfs a failed test left mounted: say so rather than fail a run that passed.
      console.warn(`tests: could not remove ${run}: ${(e as Error).message}`);
    }
  };
}
