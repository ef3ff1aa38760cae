import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  type FSWatcher,
  readdirSync,
  readFileSync,
  rmSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type DiskLocation, HashKeyStorage, NotFoundError, StorageCorruption } from '@tarnjs/tarn';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HOST_TAG } from '../../../../src-lib/dist/util/process.js';
import { pseudoRandom, sha256 } from '../../../helpers/data.js';
import { params, rejected, timeoutFor } from '../../../helpers/fuzz.js';
import { blobs } from '../../../helpers/lake.js';
import { child } from '../../../helpers/spawn.js';
import { freshPath, tempDir } from '../../../helpers/tmp.js';

/**
 * A random-operation (model-based) test of a disk lake: sequences of puts from every kind of
 * source, deletes, reads of every kind, listings, verifications, blobs corrupted behind the lake's
 * back, debris of dead writers and writers SIGKILLed mid-write, checked after every step against
 * an in-memory model (key -> bytes) and against the lake's folders read directly.
 */

const base = tempDir();
const scratch = tempDir('tarn-sources-');
const CHUNK = 1 << 20;
/** Above Linux's PID_MAX_LIMIT (2^22): no process can have it, so it names a dead writer. */
const DEAD_PID = 2 ** 22 + 1;

interface Spec {
  seed: string;
  size: number;
}

/** The values of one run (some of them equal, so that duplicates are written). */
const POOL = 4;
const spec: fc.Arbitrary<Spec> = fc.record({
  seed: fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g'),
  size: fc.oneof(
    { arbitrary: fc.constantFrom(0, 1, 2), weight: 2 },
    { arbitrary: fc.integer({ min: 3, max: 5_000 }), weight: 6 },
    // Larger than a chunk (and than what a verified read keeps in memory): read as a stream.
    { arbitrary: fc.constant(CHUNK + 17), weight: 1 },
  ),
});

interface Model {
  values: Buffer[];
  keys: string[];
  /** Every stored key, with the value's true bytes. */
  stored: Map<string, Buffer>;
  /** The stored keys whose blob was corrupted behind the lake's back, with the bytes on disk now. */
  corrupt: Map<string, Buffer>;
}

class Real {
  storage: HashKeyStorage;
  readonly children = new Set<ReturnType<typeof child>>();
  constructor(
    readonly root: string,
    readonly pool: Spec[],
  ) {
    this.storage = new HashKeyStorage(root);
  }
  get lake(): DiskLocation {
    return this.storage.location as DiskLocation;
  }
  get tmp(): string {
    return join(this.root, '.tmp');
  }
}

type Command = fc.AsyncCommand<Model, Real>;

/** The lake's folders say what the model says: exactly its keys, each blob with the expected bytes. */
function checkDisk(m: Model, r: Real): void {
  expect(blobs(r.root)).toEqual([...m.stored.keys()].sort());
  for (const [key, value] of m.stored) {
    const onDisk = readFileSync(r.lake.pathOf(key));
    expect(onDisk.equals(m.corrupt.get(key) ?? value), `bytes of ${key}`).toBe(true);
  }
}

const forget = (m: Model, key: string) => {
  m.stored.delete(key);
  m.corrupt.delete(key);
};

async function* chunked(buf: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < buf.length; at += size) yield buf.subarray(at, at + size);
}

type SourceKind = 'bytes' | 'path' | 'node stream' | 'async iterable' | 'web stream';

class Put implements Command {
  constructor(
    readonly i: number,
    readonly source: SourceKind,
    readonly chunk: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const value = m.values[this.i] as Buffer;
    const key = m.keys[this.i] as string;
    const size = Math.max(1, Math.min(this.chunk, value.length || 1));
    let source: Parameters<HashKeyStorage['write']>[0];
    switch (this.source) {
      case 'bytes':
        source = value;
        break;
      case 'path': {
        const file = join(scratch, `v-${randomBytes(4).toString('hex')}`);
        writeFileSync(file, value);
        source = file;
        break;
      }
      case 'node stream':
        source = Readable.from(chunked(value, size));
        break;
      case 'async iterable':
        source = chunked(value, size);
        break;
      case 'web stream':
        source = ReadableStream.from(chunked(value, size));
        break;
    }
    expect(await r.storage.write(source)).toBe(key);
    // A blob whose bytes were changed behind the lake's back: a new value of another size replaces it
    // (quarantined); one of the same size is taken for the same value (the digest is trusted).
    const corrupt = m.corrupt.get(key);
    if (corrupt && corrupt.length !== value.length) m.corrupt.delete(key);
    m.stored.set(key, value);
    checkDisk(m, r);
  }
  toString = () => `put(#${this.i}, ${this.source}, chunks of ${this.chunk})`;
}

class Delete implements Command {
  constructor(readonly i: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const key = m.keys[this.i] as string;
    expect(await r.storage.delete(key)).toBe(m.stored.has(key));
    forget(m, key);
    checkDisk(m, r);
  }
  toString = () => `delete(#${this.i})`;
}

type ReadKind = 'bytes' | 'path' | 'stream' | 'verified bytes' | 'verified path';

class Read implements Command {
  constructor(
    readonly i: number,
    readonly kind: ReadKind,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const key = m.keys[this.i] as string;
    const verify = this.kind.startsWith('verified');
    const read = () =>
      r.storage.read(
        key,
        async (v) => {
          switch (this.kind) {
            case 'bytes':
            case 'verified bytes':
              return v.bytes();
            case 'stream': {
              const parts: Buffer[] = [];
              for await (const c of v.stream()) parts.push(c as Buffer);
              return Buffer.concat(parts);
            }
            default:
              await v.verify();
              return readFileSync(v.path as string);
          }
        },
        { verify },
      );
    if (!m.stored.has(key)) {
      expect(await r.storage.readOrNull(key)).toBeNull();
      expect(await rejected(read())).toBeInstanceOf(NotFoundError);
    } else if (verify && m.corrupt.has(key)) {
      // The corrupt blob is quarantined: the key is gone.
      expect(await rejected(read())).toBeInstanceOf(StorageCorruption);
      forget(m, key);
    } else {
      const bytes = await read();
      expect(bytes.equals(m.corrupt.get(key) ?? (m.stored.get(key) as Buffer))).toBe(true);
    }
    checkDisk(m, r);
  }
  toString = () => `read(#${this.i}, ${this.kind})`;
}

class Contains implements Command {
  constructor(readonly i: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    expect(await r.storage.contains(m.keys[this.i] as string)).toBe(m.stored.has(m.keys[this.i] as string));
  }
  toString = () => `contains(#${this.i})`;
}

class Keys implements Command {
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const keys: string[] = [];
    for await (const k of r.storage.keys()) keys.push(k);
    expect(keys.sort()).toEqual([...m.stored.keys()].sort());
  }
  toString = () => 'keys()';
}

class Verify implements Command {
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const report = await r.storage.verify();
    expect(report.corrupt.map((c) => c.key).sort()).toEqual([...m.corrupt.keys()].sort());
    expect(report.checked).toBe(m.stored.size);
    let bytes = 0;
    for (const [key, value] of m.stored) bytes += (m.corrupt.get(key) ?? value).length;
    expect(report.bytes).toBe(bytes);
    for (const key of [...m.corrupt.keys()]) forget(m, key);
    // Every temp file of a dead writer is gone, and no writer of ours is in flight.
    expect(readdirSync(r.tmp)).toEqual([]);
    checkDisk(m, r);
  }
  toString = () => 'verify()';
}

type Damage = 'flip' | 'truncate' | 'append' | 'empty';

class Corrupt implements Command {
  constructor(
    readonly i: number,
    readonly damage: Damage,
    readonly at: number,
  ) {}
  check = (m: Readonly<Model>) =>
    m.stored.has(m.keys[this.i] as string) &&
    ((m.values[this.i] as Buffer).length > 0 || this.damage === 'append');
  async run(m: Model, r: Real): Promise<void> {
    const key = m.keys[this.i] as string;
    const value = m.values[this.i] as Buffer;
    // Always derived from the true bytes, so the result always differs from them.
    const at = this.at % Math.max(1, value.length);
    let damaged: Buffer;
    switch (this.damage) {
      case 'flip':
        damaged = Buffer.from(value);
        damaged[at] = (damaged[at] as number) ^ 0x5a;
        break;
      case 'truncate':
        damaged = value.subarray(0, at);
        break;
      case 'append':
        damaged = Buffer.concat([value, Buffer.from([at & 0xff])]);
        break;
      case 'empty':
        damaged = Buffer.alloc(0);
        break;
    }
    const path = r.lake.pathOf(key);
    chmodSync(path, 0o644);
    writeFileSync(path, damaged);
    chmodSync(path, 0o444);
    m.corrupt.set(key, damaged);
    checkDisk(m, r);
  }
  toString = () => `corrupt(#${this.i}, ${this.damage} at ${this.at})`;
}

/** What a writer killed mid-write leaves: a temp file named by its (dead) process, with a prefix of the value. */
class Debris implements Command {
  constructor(
    readonly i: number,
    readonly fraction: number,
  ) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const value = m.values[this.i] as Buffer;
    const name = `stage-${HOST_TAG}-${DEAD_PID}-${randomBytes(6).toString('hex')}`;
    writeFileSync(join(r.tmp, name), value.subarray(0, Math.floor(value.length * this.fraction)), {
      mode: 0o444,
    });
    checkDisk(m, r);
  }
  toString = () => `debris(#${this.i}, ${Math.round(this.fraction * 100)}%)`;
}

/** A real writer process (test/helpers/children/writer.mjs), SIGKILLed once its temp file exists. */
class Kill implements Command {
  constructor(readonly i: number) {}
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    const { seed, size } = r.pool[this.i] as Spec;
    let watcher: FSWatcher | undefined;
    let proc: ReturnType<typeof child> | undefined;
    try {
      // Watch first, so the creation cannot be missed. The writer pauses 10 minutes after each
      // MiB it streams, so it cannot commit: when its temp file appears, it is mid-write.
      const created = new Promise<string>((resolve, reject) => {
        watcher = watch(r.tmp, (_event, name) => {
          if (proc?.pid !== undefined && name?.startsWith(`stage-${HOST_TAG}-${proc.pid}-`)) resolve(name);
        });
        watcher.on('error', reject);
      });
      proc = child('writer.mjs', [r.root, JSON.stringify([{ seed, size }]), '600000']);
      r.children.add(proc);
      const exited = new Promise((resolve) => proc?.on('close', resolve));
      const temp = await Promise.race([
        created,
        exited.then(() => {
          throw new Error('the writer exited before it began to write');
        }),
      ]);
      proc.kill('SIGKILL');
      await exited;
      r.children.delete(proc);
      // The kill landed mid-write: the writer's temp file is still there, and no blob appeared.
      expect(existsSync(join(r.tmp, temp))).toBe(true);
    } finally {
      watcher?.close();
    }
    checkDisk(m, r);
  }
  toString = () => `kill a writer of #${this.i} mid-write`;
}

/** Another process (or a restart) opens the lake afresh: nothing lives only in memory. */
class Reopen implements Command {
  check = () => true;
  async run(m: Model, r: Real): Promise<void> {
    await r.storage.close();
    r.storage = new HashKeyStorage(r.root);
    checkDisk(m, r);
  }
  toString = () => 'reopen';
}

const index = fc.nat(POOL - 1);
const corrupt = fc
  .tuple(index, fc.constantFrom<Damage>('flip', 'truncate', 'append', 'empty'), fc.nat())
  .map(([i, d, at]) => new Corrupt(i, d, at));
const commands = fc.commands(
  [
    fc
      .tuple(
        index,
        fc.constantFrom<SourceKind>('bytes', 'path', 'node stream', 'async iterable', 'web stream'),
        fc.integer({ min: 1, max: 3_000 }),
      )
      .map(([i, s, c]) => new Put(i, s, c)),
    fc
      .tuple(index, fc.constantFrom<SourceKind>('bytes', 'async iterable'))
      .map(([i, s]) => new Put(i, s, CHUNK)),
    index.map((i) => new Delete(i)),
    fc
      .tuple(index, fc.constantFrom<ReadKind>('bytes', 'path', 'stream', 'verified bytes', 'verified path'))
      .map(([i, k]) => new Read(i, k)),
    index.map((i) => new Contains(i)),
    fc.constant(new Keys()),
    fc.constant(new Verify()),
    corrupt,
    corrupt,
    fc.tuple(index, fc.integer({ min: 0, max: 100 })).map(([i, percent]) => new Debris(i, percent / 100)),
    fc.constant(new Reopen()),
  ],
  { maxCommands: 30, size: 'large' },
);

/** Kills are costly (a node process each): a separate, smaller property mixes them in. */
const withKills = fc.commands(
  [
    index.map((i) => new Put(i, 'bytes', CHUNK)),
    index.map((i) => new Delete(i)),
    index.map((i) => new Kill(i)),
    index.map((i) => new Kill(i)),
    fc.constant(new Keys()),
    fc.constant(new Verify()),
  ],
  { maxCommands: 5 },
);

async function runModel(pool: Spec[], cmds: Iterable<Command>): Promise<void> {
  const root = freshPath(base);
  const real = new Real(root, pool);
  const values = pool.map(({ seed, size }) => pseudoRandom(seed, size));
  try {
    await fc.asyncModelRun(
      () => ({
        model: { values, keys: values.map((v) => sha256(v)), stored: new Map(), corrupt: new Map() },
        real,
      }),
      cmds,
    );
  } finally {
    for (const p of real.children) p.kill('SIGKILL');
    await real.storage.close();
    rmSync(root, { recursive: true, force: true });
  }
}

describe('a disk lake under random operations, against a model (property-based)', () => {
  it(
    'puts, deletes, reads, listings, verifications, corruption and dead writers keep the lake equal to the model',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(spec, { minLength: POOL, maxLength: POOL }), commands, runModel),
        params(40),
      );
    },
    timeoutFor(40, 120_000),
  );

  it(
    'writers SIGKILLed mid-write leave no blob and no visible key, and their temp files go at the next verify',
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.array(spec, { minLength: POOL, maxLength: POOL }), withKills, runModel),
        params(4),
      );
    },
    timeoutFor(4, 120_000),
  );
});
