import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HashKeyStorage, SidecarLocation } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inCI } from '../../../bed/binaries.js';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { tempDir } from '../../../helpers/tmp.js';

const APP = fileURLToPath(new URL('../../../helpers/children/sidecar-app.mjs', import.meta.url));
const dir = tempDir();

/** Whether this process may make a mount namespace (root, or a user namespace): as test/helpers/tmpfs.ts. */
function canUnshare(): boolean {
  try {
    execFileSync('unshare', ['-m', 'true'], { stdio: 'pipe' });
    return true;
  } catch (e) {
    if (inCI())
      throw new Error(`cannot make a mount namespace for the zero-copy tests: ${(e as Error).message}`);
    console.warn('skipping the invisible-path tests: cannot make a mount namespace (unshare -m)');
    return false;
  }
}

/**
 * A sidecar whose lake is on a tmpfs mounted in its own mount namespace: it answers paths that
 * exist for it and not for this process (an app container that does not mount the sidecar's volume).
 */
describe.runIf(canUnshare())('zero copy when the sidecar’s files are not visible here', () => {
  const hidden = join(dir, 'hidden');
  const socket = join(dir, 'ns.sock');
  let server: ChildProcess;
  beforeAll(async () => {
    mkdirSync(hidden);
    server = spawn(
      'unshare',
      [
        '-m',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount -t tmpfs tmpfs "$1" && exec "$0" "$2" "$1/lake" "$3"',
        process.execPath,
        hidden,
        APP,
        socket,
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      server.stdout?.on('data', (d: Buffer) => {
        if (d.toString().includes('listening')) resolve();
      });
      server.once('exit', (code) => reject(new Error(`the sidecar exited (${code})`)));
    });
  });
  afterAll(async () => {
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server.once('exit', r));
    }
  });

  it('streams instead, and stops asking for paths', async () => {
    const location = new SidecarLocation(socket);
    try {
      const storage = new HashKeyStorage(location);
      const data = pseudoRandom('invisible', 1 << 20);
      const key = await storage.write(data);
      expect(key).toBe(sha256(data));
      // The sidecar's lake holds it, in a folder this process cannot see.
      expect(existsSync(join(hidden, 'lake'))).toBe(false);
      expect(location.zeroCopy).toBe(true);
      const value = await location.read(key);
      expect(value?.path).toBeUndefined();
      expect(value?.size).toBe(data.length);
      await value?.close();
      expect(location.zeroCopy).toBe(false);
      expect((await storage.read(key, (v) => v.bytes(), { verify: true })).equals(data)).toBe(true);
      // A location with paths off never asks.
      const streaming = new SidecarLocation(socket, { paths: false });
      expect(streaming.zeroCopy).toBe(false);
      expect((await (await streaming.read(key))?.bytes?.())?.equals(data)).toBe(true);
      await streaming.close();
    } finally {
      await location.close();
    }
  });
});
