import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CollisionError,
  DiskLocation,
  ForbiddenError,
  HashKeyStorage,
  InvalidKeyError,
  KeyMismatchError,
  Level,
  Levels,
  openConfig,
  parseConfig,
  RefusedError,
  RemoteError,
  SidecarLocation,
  SidecarMemoIndex,
  UnsupportedError,
  WriteError,
} from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { blobs, chunks } from '../../../helpers/lake.js';
import { tempDir } from '../../../helpers/tmp.js';
import { type InProcessSidecar, startSidecar } from './server.js';

const dir = tempDir();

async function drain(source: AsyncIterable<Uint8Array> | undefined): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of source ?? []) parts.push(c);
  return Buffer.concat(parts);
}

describe('SidecarLocation over a sidecar on a disk lake', () => {
  let server: InProcessSidecar;
  let lake: string;
  let location: SidecarLocation;
  let storage: HashKeyStorage;
  beforeAll(async () => {
    lake = join(dir, 'served');
    server = await startSidecar(dir, new HashKeyStorage(new DiskLocation(lake)), { name: 'a.sock' });
    location = new SidecarLocation(server.socket);
    storage = new HashKeyStorage(location);
  });
  afterAll(async () => {
    await location?.close();
    await server?.close();
  });

  it('writes through the socket into the lake, and says whether it stored or found the value', async () => {
    const data = pseudoRandom('sidecar-put', 3 << 20);
    expect(await storage.put(chunks(data, 100_000))).toEqual({
      key: sha256(data),
      size: data.length,
      status: 'stored',
    });
    expect(blobs(lake)).toContain(sha256(data));
    expect((await storage.put(data)).status).toBe('existed');
  });

  it('maps a refusal of every method to its typed error, HEAD too (its code comes in a header)', async () => {
    // Hex the client lets through, of a length the sidecar's sha256 storage refuses.
    const short = 'abcdef12';
    await expect(location.contains(short)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(location.touch(short)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(location.read(short)).rejects.toBeInstanceOf(InvalidKeyError);
    await expect(location.delete(short)).rejects.toBeInstanceOf(InvalidKeyError);
  });

  it('reads a value as the lake’s own file when this process sees it (zero copy)', async () => {
    const data = Buffer.from('zero copy');
    const key = await storage.write(data);
    const value = await location.read(key);
    try {
      expect(value?.path).toBe(join(lake, key.slice(0, 2), key.slice(2)));
      expect(value?.size).toBe(data.length);
      expect(await drain(value?.stream())).toEqual(data);
    } finally {
      await value?.close();
    }
    expect(location.zeroCopy).toBe(true);
    expect(await storage.read(key, (v) => v.text())).toBe('zero copy');
  });

  it('streams when asked not to use paths, with the size from Content-Length', async () => {
    const data = pseudoRandom('sidecar-stream', 2 << 20);
    const key = await storage.write(data);
    const streaming = new SidecarLocation(server.socket, { paths: false });
    try {
      const value = await streaming.read(key);
      expect(value?.path).toBeUndefined();
      expect(value?.size).toBe(data.length);
      expect((await drain(value?.stream())).equals(data)).toBe(true);
      // A second stream is a second request.
      expect((await drain(value?.stream())).equals(data)).toBe(true);
      await value?.close();
      // Closing an unread value discards its body; the connection keeps serving.
      await (await streaming.read(key))?.close();
      const verified = await new HashKeyStorage(streaming).read(key, (v) => v.bytes(), { verify: true });
      expect(verified.equals(data)).toBe(true);
      expect(streaming.describe()).toEqual({ paths: false });
    } finally {
      await streaming.close();
    }
  });

  it('lists every key as NDJSON, line by line', async () => {
    const keys = new Set<string>();
    for (let i = 0; i < 300; i++) keys.add(await storage.write(Buffer.from(`listed ${i}`)));
    const listed = new Set<string>();
    for await (const k of location.keys()) listed.add(k);
    for (const k of keys) expect(listed.has(k)).toBe(true);
    expect(listed).toEqual(new Set(blobs(lake)));
  });

  it('checks the sidecar’s key against the caller’s: an expected key that does not match stores nothing', async () => {
    const data = Buffer.from('not what was promised');
    const wrong = sha256('something else');
    await expect(storage.write(data, { expectedKey: wrong })).rejects.toBeInstanceOf(KeyMismatchError);
    // The stage itself: the sidecar refuses the body (422) when the header names another key.
    const stage = await location.stage({ key: wrong });
    await stage?.push(data);
    await expect(stage?.commit(wrong)).rejects.toBeInstanceOf(KeyMismatchError);
    await stage?.abort();
    expect(blobs(lake)).not.toContain(sha256(data));
    // Without the header, a commit under another key than the bytes' is caught by the client.
    const blind = await location.stage();
    await blind?.push(data);
    const err = await blind?.commit(wrong).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WriteError);
    expect((err as Error).message).toMatch(/hash to .* not to/);
    // And the bytes can still be handed on.
    expect(await drain(blind?.reclaim())).toEqual(data);
  });

  it('hands every pushed byte back when asked instead of a commit (the upload is cut, nothing stored)', async () => {
    const data = pseudoRandom('sidecar-reclaim', 12 << 20);
    const stage = await location.stage();
    for await (const c of chunks(data)) expect(await stage?.push(c)).toBe(true);
    expect((await drain(stage?.reclaim())).equals(data)).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(blobs(lake)).not.toContain(sha256(data));
  });

  it('hands out leases: one holder at a time, renewed and released by token', async () => {
    const name = sha256('a lease');
    const lease = await location.lease(name, 5000);
    expect(lease).not.toBeNull();
    expect(await location.lease(name, 5000)).toBeNull();
    expect(await lease?.renew()).toBe(true);
    await lease?.release();
    expect(await lease?.renew()).toBe(false);
    const again = await location.lease(name, 5000);
    expect(again).not.toBeNull();
    await again?.release();
    await expect(location.lease('not hex', 5000)).rejects.toBeInstanceOf(InvalidKeyError);
  });

  it('serves the memo index: entries written once, a different one is a collision, not listable', async () => {
    const index = location.memoIndex();
    expect(index).toBeInstanceOf(SidecarMemoIndex);
    const call = sha256('a call');
    expect(await index.read(call)).toBeNull();
    const write = async (entry: string) => {
      const stage = await index.stage({ key: call, size: entry.length });
      await stage?.push(Buffer.from(entry));
      return stage?.commit(call);
    };
    expect(await write('{"v":1}')).toEqual({ status: 'stored' });
    expect(await write('{"v":1}')).toEqual({ status: 'existed' });
    // A different entry under the call key stays (the API says 409 → CollisionError; a disk index,
    // which cannot compare entries, answers `existed`): either way the first entry is kept.
    const other = await write('{"v":2}').catch((e: unknown) => e);
    if (other instanceof Error) expect(other).toBeInstanceOf(CollisionError);
    else expect(other).toEqual({ status: 'existed' });
    expect((await (await index.read(call))?.bytes?.())?.toString()).toBe('{"v":1}');
    expect(await index.contains(call)).toBe(true);
    await expect(drain(index.keys() as AsyncIterable<never>)).rejects.toBeInstanceOf(UnsupportedError);
    expect(await index.stage({ size: 65 * 1024 })).toBeNull();
    await expect(index.read('abc')).rejects.toBeInstanceOf(InvalidKeyError);
    expect(await index.delete(call)).toBe(true);
    expect(await index.delete(call)).toBe(false);
    await index.close();
    // The location's connections outlive its index's close.
    expect(await location.contains(call)).toBe(false);
  });
});

describe('SidecarLocation: what the sidecar refuses, and a sidecar that is down', () => {
  it('a delete the config does not allow is a ForbiddenError', async () => {
    const server = await startSidecar(dir, new HashKeyStorage(new DiskLocation(join(dir, 'nodelete'))), {
      name: 'nodelete.sock',
      settings: { allowDelete: false },
    });
    const location = new SidecarLocation(server.socket);
    try {
      const key = await new HashKeyStorage(location).write(Buffer.from('kept'));
      await expect(location.delete(key)).rejects.toBeInstanceOf(ForbiddenError);
      expect(await location.contains(key)).toBe(true);
    } finally {
      await location.close();
      await server.close();
    }
  });

  it('a value every level refuses (507) or over the body limit (413) is refused, every byte handed back', async () => {
    const full = await startSidecar(
      dir,
      new HashKeyStorage(new DiskLocation(join(dir, 'small'), { maxSize: '1MiB' })),
      { name: 'full.sock' },
    );
    const limited = await startSidecar(dir, new HashKeyStorage(new DiskLocation(join(dir, 'limited'))), {
      name: 'limited.sock',
      settings: { bodyLimit: 1 << 20 },
    });
    try {
      for (const server of [full, limited]) {
        const location = new SidecarLocation(server.socket);
        const data = pseudoRandom(`refused-${server.socket}`, 3 << 20);
        const err = (await new HashKeyStorage(location)
          .write(chunks(data, 256 << 10))
          .catch((e: unknown) => e)) as RefusedError;
        expect(err).toBeInstanceOf(RefusedError);
        expect((await drain(err.source())).equals(data)).toBe(true);
        // In a Levels, the refused value goes on to the next level.
        const local = join(dir, `next-${server.socket.endsWith('full.sock') ? 'a' : 'b'}`);
        const levels = new HashKeyStorage(new Levels(new Level(location), new Level(local)));
        expect(await levels.write(chunks(data, 256 << 10))).toBe(sha256(data));
        expect(blobs(local)).toContain(sha256(data));
        await levels.close();
      }
    } finally {
      await full.close();
      await limited.close();
    }
  });

  it('a sidecar that is down is a RemoteError, and a Levels keeps serving from its other level', async () => {
    const socket = join(dir, 'nobody-listens.sock');
    writeFileSync(join(dir, 'placeholder'), '');
    const down = new SidecarLocation(socket, { requestTimeoutMs: 2000 });
    const key = sha256('anything');
    await expect(down.contains(key)).rejects.toBeInstanceOf(RemoteError);
    await expect(down.read(key)).rejects.toBeInstanceOf(RemoteError);
    const stage = await down.stage();
    await expect(
      (async () => {
        await stage?.push(Buffer.from('x'));
        return stage?.commit(sha256('x'));
      })(),
    ).rejects.toBeInstanceOf(RemoteError);
    await stage?.abort();
    await expect(down.lease(key, 1000)).rejects.toBeInstanceOf(RemoteError);
    const error = await down.contains(key).catch((e: unknown) => e);
    expect((error as Error).message).toContain(socket);

    const local = join(dir, 'beside-down');
    const levels = new HashKeyStorage(
      new Levels(new Level(down, { name: 'sidecar' }), new Level(local, { name: 'disk' }), {
        onFault: () => undefined,
      }),
    );
    const written = await levels.write(Buffer.from('served anyway'));
    expect(await levels.read(written, (v) => v.text())).toBe('served anyway');
    expect(await levels.contains(written)).toBe(true);
    await levels.close();
  });

  it('a sidecar whose tree has no memo index answers UnsupportedError', async () => {
    const tree = new Levels(join(dir, 'memo-less-a'), join(dir, 'memo-less-b'));
    const server = await startSidecar(dir, new HashKeyStorage(tree), { name: 'memoless.sock' });
    const location = new SidecarLocation(server.socket);
    try {
      await expect(location.memoIndex().read(sha256('call'))).rejects.toBeInstanceOf(UnsupportedError);
    } finally {
      await location.close();
      await server.close();
    }
  });
});

describe('the sidecar config kind', () => {
  it('builds a SidecarLocation on a socket relative to the config file, and its memo index', () => {
    const base = join(dir, 'conf');
    const config = parseConfig({
      location: { kind: 'sidecar', socket: 'run/tarn.sock', paths: false, requestTimeoutMs: 1000 },
    });
    const { storage, memoIndex } = openConfig(config, { base });
    expect(storage.location).toBeInstanceOf(SidecarLocation);
    expect(storage.location.target).toBe(join(base, 'run/tarn.sock'));
    expect((storage.location as SidecarLocation).describe()).toEqual({ paths: false });
    expect(memoIndex).toBeInstanceOf(SidecarMemoIndex);
    // A memo index the config names wins.
    const named = openConfig(
      parseConfig({
        location: { kind: 'sidecar', socket: '/run/tarn.sock' },
        memo: { index: join(dir, 'named-index') },
      }),
    );
    expect(named.memoIndex).toBeInstanceOf(DiskLocation);
  });
});
