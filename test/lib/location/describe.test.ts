import {
  DiskLocation,
  describeTree,
  digest,
  Fanout,
  HashKeyStorage,
  Level,
  Levels,
  type OpOptions,
  Small,
} from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { freshPath, tempDir } from '../../helpers/tmp.js';

const base = tempDir();

/** A real lake that counts the lookups it answers, to see how often a walk probes it. */
class Counted extends DiskLocation {
  lookups = 0;
  override contains(key: string, options?: OpOptions): Promise<boolean> {
    this.lookups++;
    return super.contains(key, options);
  }
}

describe('describeTree', () => {
  it('describes the tree as plain JSON from what each location declares, probing each leaf once', async () => {
    const shared = new Counted(freshPath(base), { maxSize: '1M' });
    const root = new Levels(
      new Level(new Small(shared, 2048), { timeoutMs: 100 }),
      new Fanout(shared, new DiskLocation(freshPath(base), { create: true })),
    );
    const d = await describeTree(root);
    // Plain JSON: it survives a round trip unchanged (what the sidecar serves).
    expect(JSON.parse(JSON.stringify(d))).toEqual(d);
    expect(d).toEqual({
      kind: 'levels',
      flags: {},
      children: [
        {
          kind: 'small',
          flags: { maxSize: 2048 },
          level: { index: 0, write: true, replicate: true, touch: false, timeoutMs: 100 },
          children: [
            {
              kind: 'disk',
              target: shared.target,
              flags: { levels: [1, -1], maxSize: 1_000_000 },
              reachable: true,
            },
          ],
        },
        {
          kind: 'fanout',
          flags: {},
          level: { index: 1, write: true, replicate: true, touch: false },
          children: [
            {
              kind: 'disk',
              target: shared.target,
              flags: { levels: [1, -1], maxSize: 1_000_000 },
              reachable: true,
            },
            { kind: 'disk', target: expect.any(String), flags: { levels: [1, -1] }, reachable: true },
          ],
        },
      ],
    });
    expect(shared.lookups).toBe(1);
  });

  it('says why a leaf is unreachable, with the key length of the digest, and can skip probing', async () => {
    const asked: string[] = [];
    const broken = new DiskLocation(freshPath(base));
    broken.contains = async (key) => {
      asked.push(key);
      throw new Error('the disk is gone');
    };
    const d = await describeTree(new Fanout(broken), { digest: digest('sha512') });
    expect(d.children?.[0]).toMatchObject({ reachable: false, error: 'the disk is gone' });
    expect(asked.map((k) => k.length)).toEqual([128]);
    const unprobed = await describeTree(new Fanout(broken), { probe: false });
    expect(unprobed.children?.[0]).not.toHaveProperty('reachable');
    expect(asked).toHaveLength(1);
  });

  it('HashKeyStorage.describe names the digest and whether every leaf answered', async () => {
    const storage = new HashKeyStorage(freshPath(base), { algorithm: 'sha384' });
    expect(await storage.describe()).toEqual({
      algorithm: 'sha384',
      reachable: true,
      location: { kind: 'disk', target: expect.any(String), flags: { levels: [1, -1] }, reachable: true },
    });
  });
});
