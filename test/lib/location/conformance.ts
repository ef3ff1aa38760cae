import { createHash } from 'node:crypto';
import { HashKeyStorage, InvalidKeyError, type Location, NotFoundError, RefusedError } from '@tarnjs/tarn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pseudoRandom } from '../../helpers/data.js';

export interface Subject {
  location: Location;
  /** Writes a value behind the location's back (read-only locations are seeded this way). */
  seed?: (data: Buffer) => Promise<string>;
  /**
   * Every object the location's storage holds, read behind its back (files of a lake but its
   * config.yml and tools/, temp files included; Redis keys; S3 objects and pending uploads):
   * what a write really left behind, which `keys()` (de-duplicated, filtered) cannot show.
   */
  objects?: () => Promise<string[]>;
  /** The server behind the location, frozen (SIGSTOP) to prove that something needs no request. */
  server?: { pause(): void; resume(): void };
  teardown?: () => Promise<void>;
}

export interface Capabilities {
  /** Largest value the location accepts (larger ones must be refused). */
  maxValue?: number;
  readOnly?: boolean;
  /** The location talks to a server (the subject gives `server`). */
  remote?: boolean;
  /**
   * False when the services the location needs cannot run here (off CI): the suite then shows as
   * skipped. Pass `available(service)`, which throws in CI.
   */
  enabled?: boolean;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function drain(source: AsyncIterable<Uint8Array> | undefined): Promise<Buffer> {
  const parts: Uint8Array[] = [];
  for await (const c of source ?? []) parts.push(c);
  return Buffer.concat(parts);
}

async function* chunks(buf: Buffer, size = 1 << 20) {
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
}

/**
 * The behaviour every Location promises, run against each one on its real server: round trips
 * of 0 B, 1 B, 1 KiB and 100 MiB, missing keys, delete, list, one key written concurrently,
 * refusals that hand the bytes back, and invalid keys.
 */
export function conformance(name: string, make: () => Promise<Subject>, caps: Capabilities = {}): void {
  // Tests that do not apply to a location (writes to a read-only one) are not registered at all:
  // a skipped test means one thing only, a service that cannot run here (off CI).
  describe.runIf(caps.enabled ?? true)(`Location conformance: ${name}`, () => {
    let subject: Subject;
    let storage: HashKeyStorage;
    const put = async (data: Buffer) =>
      caps.readOnly ? (subject.seed as (d: Buffer) => Promise<string>)(data) : storage.write(data);

    beforeAll(async () => {
      subject = await make();
      storage = new HashKeyStorage(subject.location);
    }, 120_000);
    afterAll(async () => {
      await subject?.location.close();
      await subject?.teardown?.();
    });

    const sizes: Array<[string, number]> = [
      ['empty', 0],
      ['1 byte', 1],
      ['1 KiB', 1024],
      ['100 MiB', 100 << 20],
    ];
    const fits = ([, size]: [string, number]) => caps.maxValue === undefined || size <= caps.maxValue;
    const accepted = sizes.filter(fits);
    const tooLarge = sizes.filter((s) => !fits(s));
    it.each(accepted)(
      'round-trips a %s value',
      async (_label, size) => {
        const data = pseudoRandom(`conformance-${size}`, size);
        const key = await put(data);
        expect(key).toBe(sha(data));
        expect(await storage.contains(key)).toBe(true);
        const back = await storage.read(key, (v) => v.bytes(), { verify: true });
        expect(back.length).toBe(size);
        expect(back.equals(data)).toBe(true);
      },
      120_000,
    );
    if (tooLarge.length > 0)
      it.each(tooLarge)(
        'refuses a %s value over its limit, handing every byte back',
        async (_label, size) => {
          const data = pseudoRandom(`conformance-${size}`, size);
          // Streamed, so the location learns the size only as the bytes come: refused midway, handed back.
          const err = (await storage.write(chunks(data)).catch((e: unknown) => e)) as RefusedError;
          expect(err).toBeInstanceOf(RefusedError);
          expect((await drain(err.source())).equals(data)).toBe(true);
          expect(await storage.contains(sha(data))).toBe(false);
          // With the size known up front, it refuses before any byte moves.
          expect(await subject.location.stage({ size })).toBeNull();
        },
        120_000,
      );

    it('answers for missing keys without errors', async () => {
      const missing = sha(Buffer.from(`missing from ${name}`));
      expect(await subject.location.read(missing)).toBeNull();
      await expect(storage.read(missing)).rejects.toBeInstanceOf(NotFoundError);
      expect(await storage.contains(missing)).toBe(false);
      expect(await storage.delete(missing)).toBe(false);
      expect(await storage.touch(missing)).toBe(false);
    });

    it('lists what it stores', async () => {
      const keys = [];
      for (const s of ['list-a', 'list-b', 'list-c']) keys.push(await put(Buffer.from(s)));
      const listed = new Set<string>();
      for await (const k of storage.keys()) listed.add(k);
      for (const k of keys) expect(listed.has(k)).toBe(true);
      expect(await storage.touch(keys[0] as string)).toBe(true);
    });

    if (!caps.readOnly)
      it('deletes', async () => {
        const key = await storage.write(Buffer.from(`delete me from ${name}`));
        expect(await storage.delete(key)).toBe(true);
        expect(await storage.contains(key)).toBe(false);
        expect(await storage.delete(key)).toBe(false);
      });

    if (!caps.readOnly)
      it('stores one key written concurrently once, with the right bytes', async () => {
        const data = pseudoRandom(`concurrent-${name}`, 300_000);
        const keys = await Promise.all(Array.from({ length: 8 }, () => storage.write(chunks(data, 65536))));
        expect(new Set(keys)).toEqual(new Set([sha(data)]));
        expect((await storage.read(sha(data), (v) => v.bytes(), { verify: true })).equals(data)).toBe(true);
        // Raw objects, not keys(): eight writers leave one object, and no temp file or pending upload.
        const before = new Set(await (subject.objects as () => Promise<string[]>)());
        await storage.write(chunks(data, 65536));
        const after = await (subject.objects as () => Promise<string[]>)();
        expect(after.filter((o) => !before.has(o))).toEqual([]);
        // Names split the key into folders (2c/f24d…, 2cf2/4dba…): compare without the slashes.
        expect(after.filter((o) => o.replaceAll('/', '').includes(sha(data)))).toHaveLength(1);
        expect(after.filter((o) => o.includes('.tmp/') || o.startsWith('upload:'))).toEqual([]);
      });

    if (caps.readOnly)
      it('refuses writes, handing a stream back', async () => {
        expect(await subject.location.stage()).toBeNull();
        const data = Buffer.from('not accepted');
        const err = (await storage.write(chunks(data)).catch((e: unknown) => e)) as RefusedError;
        expect(err).toBeInstanceOf(RefusedError);
        expect((await drain(err.source())).equals(data)).toBe(true);
        expect(await subject.location.delete(sha(data))).toBe(false);
      });

    it(caps.remote
      ? 'rejects invalid keys without a request (the server is frozen)'
      : 'rejects invalid keys', async () => {
      // A frozen server answers nothing: a location that sent a request would hang here until the
      // test's timeout instead of rejecting at once.
      subject.server?.pause();
      try {
        for (const bad of ['', '../../etc/passwd', 'zz', 'abc', `${'a'.repeat(63)}/`]) {
          await expect(subject.location.read(bad)).rejects.toBeInstanceOf(InvalidKeyError);
          await expect(subject.location.contains(bad)).rejects.toBeInstanceOf(InvalidKeyError);
          await expect(subject.location.delete(bad)).rejects.toBeInstanceOf(InvalidKeyError);
          await expect(subject.location.touch(bad)).rejects.toBeInstanceOf(InvalidKeyError);
          await expect(subject.location.stage({ key: bad })).rejects.toBeInstanceOf(InvalidKeyError);
        }
      } finally {
        subject.server?.resume();
      }
    }, 10_000);
    if (caps.remote ?? false)
      it('has a server to freeze', () => {
        expect(subject.server).toBeDefined();
      });
  });
}
