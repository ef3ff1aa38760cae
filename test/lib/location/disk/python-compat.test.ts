import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DiskLocation, HashKeyStorage } from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { b64, py, pythonTarn } from '../../../helpers/python.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

const base = tempDir();

async function keysOf(storage: HashKeyStorage): Promise<string[]> {
  const keys: string[] = [];
  for await (const k of storage.keys()) keys.push(k);
  return keys.sort();
}

// The original implementation, from PyPI, reads and writes the very same folders.
describe.runIf(pythonTarn())('lakes shared with Python tarn 0.14', () => {
  const values = [Buffer.alloc(0), Buffer.from('hello'), pseudoRandom('py-1', 3 * (1 << 20) + 5)];

  it('a lake Python wrote is read by us, byte for byte', async () => {
    const root = freshPath(base);
    const file = join(base, 'py-file.bin');
    writeFileSync(file, pseudoRandom('py-file', 100_000));
    const keys = (await py([
      ...values.map((v) => ({ op: 'write' as const, root, data: b64(v) })),
      { op: 'write_file', root, path: file },
    ])) as string[];
    expect(keys).toEqual([...values, readFileSync(file)].map((v) => sha256(v)));
    const storage = new HashKeyStorage(root);
    expect(await keysOf(storage)).toEqual([...keys].sort());
    for (const [i, v] of values.entries()) {
      expect((await storage.read(keys[i] as string, (x) => x.bytes(), { verify: true })).equals(v)).toBe(
        true,
      );
    }
    // And we can keep writing into it.
    const ours = await storage.write(Buffer.from('added by typescript'));
    expect(await py([{ op: 'read', root, key: ours }])).toEqual([b64('added by typescript')]);
  });

  it('a lake we wrote is read by Python, byte for byte, and Python keeps writing into it', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    const keys = await Promise.all(values.map((v) => storage.write(v)));
    const out = (await py([
      ...keys.map((key) => ({ op: 'read' as const, root, key })),
      { op: 'keys', root },
    ])) as unknown[];
    expect(out.slice(0, values.length)).toEqual(values.map((v) => b64(v)));
    expect(out.at(-1)).toEqual([...keys].sort());
    const [pyKey] = (await py([{ op: 'write', root, data: b64('added by python') }])) as string[];
    expect(await storage.read(pyKey as string, (v) => v.text())).toBe('added by python');
  });

  it('the same value written by both is stored once, with no collision', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    const key = await storage.write(values[2] as Buffer);
    expect(await py([{ op: 'write', root, data: b64(values[2] as Buffer) }])).toEqual([key]);
    expect(await storage.write(values[2] as Buffer)).toBe(key);
    expect(await keysOf(storage)).toEqual([key]);
  });

  it('a lake Python created with other levels is followed', async () => {
    const root = freshPath(base);
    await py([{ op: 'init', root, levels: [1, 1, -1] }]);
    const storage = new HashKeyStorage(root);
    const key = await storage.write(Buffer.from('deep'));
    expect(new DiskLocation(root).pathOf(key)).toBe(
      join(root, key.slice(0, 2), key.slice(2, 4), key.slice(4)),
    );
    expect(
      await py([
        { op: 'read', root, key },
        { op: 'keys', root },
      ]),
    ).toEqual([b64('deep'), [key]]);
  });

  it('a lake keyed by another digest records it so that Python uses the same one', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root, { algorithm: 'blake2b512' });
    const key = await storage.write(Buffer.from('blake'));
    expect(readFileSync(join(root, 'config.yml'), 'utf8')).toMatch(/^hash: blake2b$/m);
    expect(
      await py([
        { op: 'read', root, key },
        { op: 'write', root, data: b64('blake') },
      ]),
    ).toEqual([b64('blake'), key]);
  });

  it('Python deletes what we wrote and we see it gone', async () => {
    const root = freshPath(base);
    const storage = new HashKeyStorage(root);
    const key = await storage.write(Buffer.from('short-lived'));
    expect(await py([{ op: 'delete', root, key }])).toEqual([true]);
    expect(await storage.contains(key)).toBe(false);
  });
});
