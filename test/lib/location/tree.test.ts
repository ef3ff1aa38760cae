import {
  type Child,
  ConfigError,
  DiskLocation,
  Fanout,
  HashKeyStorage,
  Level,
  Levels,
  type Location,
  Small,
  walkTree,
} from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { freshPath, tempDir } from '../../helpers/tmp.js';

const base = tempDir();

/** Someone else's combinator (no class of the library): it only declares its children. */
class Mirror implements Location {
  readonly kind = 'mirror';
  readonly target = '';
  readonly also: Location[] = [];
  constructor(readonly inner: Location) {}
  children(): readonly Child[] {
    return [this.inner, ...this.also].map((location) => ({ location, use: { as: 'inner' } }));
  }
  read: Location['read'] = (key, options) => this.inner.read(key, options);
  stage: Location['stage'] = (options) => this.inner.stage(options);
  contains: Location['contains'] = (key, options) => this.inner.contains(key, options);
  delete: Location['delete'] = (key, options) => this.inner.delete(key, options);
  keys: Location['keys'] = (options) => this.inner.keys(options);
  touch: Location['touch'] = (key, options) => this.inner.touch(key, options);
  close: Location['close'] = () => this.inner.close();
}

describe('walkTree', () => {
  it('visits every place of every location, parents first, saying how each parent uses it', () => {
    const shared = new DiskLocation(freshPath(base));
    const ssd = new DiskLocation(freshPath(base));
    const root = new Levels(
      new Level(ssd, { write: false, name: 'fast' }),
      new Small(shared, 1024),
      new Fanout(shared, freshPath(base)),
    );
    const entries = [...walkTree(root)];
    expect(entries.map((e) => [e.location.kind, e.use?.as, e.first])).toEqual([
      ['levels', undefined, true],
      ['disk', 'level', true],
      ['small', 'level', true],
      ['disk', 'inner', true],
      ['fanout', 'level', true],
      ['disk', 'member', false], // the shared lake, met a second time
      ['disk', 'member', true],
    ]);
    expect(entries[1]?.use).toEqual({
      as: 'level',
      index: 0,
      write: false,
      replicate: true,
      touch: false,
      name: 'fast',
    });
    expect(entries[3]?.parent?.location).toBe(entries[2]?.location);
  });

  it('refuses a tree that contains itself', () => {
    const mirror = new Mirror(new DiskLocation(freshPath(base)));
    mirror.also.push(mirror);
    expect(() => [...walkTree(mirror)]).toThrow(ConfigError);
  });

  it('is what the digest check reads: a lake declared by any combinator must agree', () => {
    const mirror = new Mirror(new DiskLocation(freshPath(base)));
    mirror.also.push(new DiskLocation(freshPath(base), { algorithm: 'sha512' }));
    expect(new HashKeyStorage(mirror).algorithm).toBe('sha512');
    expect(() => new HashKeyStorage(mirror, { algorithm: 'sha256' })).toThrow(/records sha512/);
  });
});
