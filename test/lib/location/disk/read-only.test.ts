import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DiskLocation, HashKeyStorage } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { inCI } from '../../../bed/binaries.js';
import { pseudoRandom } from '../../../helpers/data.js';
import { run, TARN_BIN } from '../../../helpers/spawn.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

// Root ignores permissions: the lake is read by `nobody`, who may read it but not write to it.
// Only root can drop to another user; CI runs as root, so there its absence is a failure.
const asRoot = process.getuid?.() === 0;
if (!asRoot && inCI()) throw new Error('the read-only lake tests need root (to run as nobody)');
const NOBODY = ['--reuid=65534', '--regid=65534', '--clear-groups'];
const asNobody = (args: string[]) => run('setpriv', [...NOBODY, process.execPath, ...args]);
const VERIFY = fileURLToPath(new URL('../../../helpers/children/verify.mjs', import.meta.url));

const base = tempDir();
chmodSync(base, 0o755); // mkdtemp makes it private

/** A lake of three values, two of them damaged in place (one small, one larger than 1 MiB), owned by root. */
async function damagedLake() {
  const root = freshPath(base);
  const lake = new DiskLocation(root);
  const storage = new HashKeyStorage(lake);
  const good = await storage.write(Buffer.from('intact'));
  const small = await storage.write(Buffer.from('small and damaged'));
  const large = await storage.write(pseudoRandom('large and damaged', 3 << 20));
  for (const key of [small, large]) {
    const path = lake.pathOf(key);
    const bytes = readFileSync(path);
    bytes[0] = (bytes[0] as number) ^ 0xff;
    chmodSync(path, 0o644);
    writeFileSync(path, bytes);
    chmodSync(path, 0o444);
  }
  return { root, lake, good, small, large };
}

describe.skipIf(!asRoot)('a lake the user may read but not write', () => {
  it('verify and verified reads report every corrupt blob as StorageCorruption, saying why it stays', async () => {
    const { root, lake, small, large } = await damagedLake();
    const r = await asNobody([VERIFY, root, JSON.stringify([small, large])]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const { report, reads } = JSON.parse(r.stdout);
    expect(report.checked).toBe(3);
    expect(report.corrupt.map((c: { key: string }) => c.key).sort()).toEqual([small, large].sort());
    for (const c of report.corrupt) {
      expect(c.quarantinedTo).toBeUndefined();
      expect(c.notMoved).toMatch(/EACCES|permission denied/);
    }
    expect(reads).toHaveLength(2);
    for (const read of reads) {
      expect(read.code).toBe('TARN_CORRUPTION');
      expect(read.quarantinedTo).toBeNull();
      expect(read.message).toMatch(/could not be moved aside \(.*(EACCES|permission denied)/);
    }
    // Nothing was moved: the corrupt blobs are where they were.
    expect(await lake.contains(small)).toBe(true);
    expect(await lake.contains(large)).toBe(true);
  });

  it('the CLI: verify and cat --verify exit 4 with the corruption, without a stack trace', async () => {
    const { root, good, small, large } = await damagedLake();
    const verify = await asNobody([TARN_BIN, '--storage', root, 'verify']);
    expect(verify.code).toBe(4);
    expect(verify.stderr).toContain(`corrupt: ${small}`);
    expect(verify.stderr).toContain(`corrupt: ${large}`);
    expect(verify.stderr).not.toMatch(/\n\s+at /);
    for (const key of [small, large]) {
      const cat = await asNobody([TARN_BIN, '--storage', root, 'cat', '--verify', key]);
      expect(cat.code).toBe(4);
      expect(cat.stderr).toMatch(/is corrupt.*could not be moved aside/);
      expect(cat.stderr).not.toMatch(/\n\s+at /);
    }
    const cat = await asNobody([TARN_BIN, '--storage', root, 'cat', '--verify', good]);
    expect([cat.code, cat.stdout]).toEqual([0, 'intact']);
  });
});
