import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  AbortError,
  CacheKeyError,
  CollisionError,
  ConfigError,
  ERRORS,
  ForbiddenError,
  InvalidKeyError,
  IoError,
  KeyMismatchError,
  LeaseLostError,
  MemoError,
  NoLocalCopyError,
  NotFoundError,
  PartialDeleteError,
  ReadError,
  RefusedError,
  RemoteError,
  SERVICE_CODES,
  ServiceError,
  SocketInUseError,
  SourceError,
  StorageCorruption,
  statusOf,
  TarnError,
  UnsupportedError,
  UsageError,
  WriteError,
} from '@tarnjs/tarn';
import { describe, expect, it } from 'vitest';
import { sha256 } from '../helpers/data.js';
import { REPO } from '../helpers/spawn.js';

const key = sha256('k');

/** One instance of every error class the package exports. */
const instances: Error[] = [
  new TarnError('x'),
  new InvalidKeyError('zz', 'not hex'),
  new ReadError('x'),
  new NotFoundError(key),
  new WriteError('x'),
  new RefusedError('full'),
  new KeyMismatchError(key, sha256('other')),
  new CollisionError(key, 'differs'),
  new StorageCorruption(key, sha256('other'), 'disk /lake'),
  new ConfigError('bad'),
  new SourceError('x'),
  new AbortError(),
  new RemoteError('redis://h', 'GET', new Error('down')),
  new MemoError('x'),
  new CacheKeyError('args.0', 'a function'),
  new UsageError('x'),
  new IoError('x'),
  new PartialDeleteError(key, ['disk /a'], [{ where: 'redis://h', message: 'down' }]),
  new UnsupportedError('x'),
  new ForbiddenError('x'),
  new NoLocalCopyError(key, 'no disk lake'),
  new LeaseLostError('x'),
  new SocketInUseError('/run/tarn.sock'),
  // The sidecar's own refusals: one class, a code each.
  ...SERVICE_CODES.map((code) => new ServiceError(code, 'x')),
];

/** Every `code = 'TARN_…'` the library's source declares. */
function declaredCodes(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((f) => f.isFile() && f.name.endsWith('.ts'))
    .flatMap((f) => [
      ...readFileSync(join(f.parentPath, f.name), 'utf8').matchAll(/code(?:: string)? = '(TARN_[A-Z_]+)'/g),
    ])
    .map((m) => m[1] as string)
    .concat(SERVICE_CODES);
}

describe('the error table', () => {
  it('has a row for every code the library declares, and for nothing else', () => {
    const declared = new Set(declaredCodes(join(REPO, 'src-lib/src')));
    expect(declared.size).toBeGreaterThanOrEqual(17);
    expect(new Set(Object.keys(ERRORS))).toEqual(declared);
    expect(instances.map((e) => (e as TarnError).code).sort()).toEqual([...declared].sort());
  });

  it('gives every error class its row: exit status and HTTP status', () => {
    for (const e of instances) {
      const row = ERRORS[(e as TarnError).code as keyof typeof ERRORS];
      expect(statusOf(e), e.name).toEqual({
        code: (e as TarnError).code,
        exit: row.exit,
        http: row.http,
        expected: true,
      });
      expect(row.error).toBe(e.name);
    }
  });

  it('keeps the documented exit codes and REST statuses', () => {
    const exits = Object.fromEntries(Object.entries(ERRORS).map(([c, r]) => [c, [r.exit, r.http]]));
    expect(exits).toEqual({
      TARN_ERROR: [1, 500],
      TARN_INVALID_KEY: [2, 400],
      TARN_USAGE: [2, 400],
      TARN_READ_ERROR: [1, 500],
      TARN_NOT_FOUND: [3, 404],
      TARN_CORRUPTION: [4, 500],
      TARN_WRITE_ERROR: [1, 500],
      TARN_REFUSED: [5, 507],
      TARN_KEY_MISMATCH: [7, 422],
      TARN_COLLISION: [7, 409],
      TARN_SOURCE: [1, 400],
      TARN_CONFIG: [6, 500],
      TARN_ABORTED: [130, 499],
      TARN_REMOTE: [1, 502],
      TARN_MEMO: [1, 500],
      TARN_CACHE_KEY: [1, 400],
      TARN_IO: [1, 500],
      TARN_PARTIAL_DELETE: [1, 502],
      TARN_UNSUPPORTED: [1, 501],
      TARN_FORBIDDEN: [1, 403],
      TARN_NO_LOCAL_COPY: [1, 409],
      TARN_LEASE_LOST: [1, 409],
      TARN_SOCKET_IN_USE: [1, 500],
      TARN_TOO_LARGE: [1, 413],
      TARN_NO_ROUTE: [1, 404],
      TARN_BAD_REQUEST: [2, 400],
      TARN_RANGE: [1, 416],
      TARN_TIMEOUT: [1, 408],
      TARN_BUSY: [1, 503],
      TARN_UNAVAILABLE: [1, 503],
    });
  });

  it('maps an OS error to TARN_IO, an abort to TARN_ABORTED, anything else to an unexpected 500', () => {
    const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
      errno: -28,
      syscall: 'write',
    });
    expect(statusOf(enospc)).toEqual({ code: 'TARN_IO', exit: 1, http: 500, expected: true });
    const domAbort = new DOMException('aborted', 'AbortError');
    expect(statusOf(domAbort)).toEqual({ code: 'TARN_ABORTED', exit: 130, http: 499, expected: true });
    expect(statusOf(new TypeError('x is undefined'))).toEqual({
      code: 'TARN_ERROR',
      exit: 1,
      http: 500,
      expected: false,
    });
    expect(statusOf('a string')).toMatchObject({ code: 'TARN_ERROR', expected: false });
  });

  it('is the table docs/library.md lists: every code with its exit and HTTP status', () => {
    const doc = readFileSync(join(REPO, 'docs/library.md'), 'utf8');
    for (const [code, row] of Object.entries(ERRORS)) {
      const line = doc.split('\n').find((l) => l.startsWith('|') && l.includes(`\`${code}\``));
      expect(line, code).toBeDefined();
      const cells = (line as string).split('|').map((c) => c.trim());
      expect(cells, code).toContain(String(row.exit));
      expect(cells, code).toContain(String(row.http));
      expect(line, code).toContain(`\`${row.error}\``);
    }
  });
});

describe('IoError', () => {
  it('turns an OS error into one line naming the path and what to do', () => {
    const eacces = Object.assign(new Error("EACCES: permission denied, open '/lake/.tmp/x'"), {
      code: 'EACCES',
      errno: -13,
      syscall: 'open',
      path: '/lake/.tmp/x',
    });
    const e = IoError.from(eacces);
    expect(e).toBeInstanceOf(TarnError);
    expect(e.code).toBe('TARN_IO');
    expect(e.errno).toBe('EACCES');
    expect(e.path).toBe('/lake/.tmp/x');
    expect(e.cause).toBe(eacces);
    expect(e.message).toBe(
      'cannot open /lake/.tmp/x: permission denied; check the permissions of it and of its folders (ls -ld)',
    );
    const full = Object.assign(new Error('ENOSPC: no space left on device, write'), {
      code: 'ENOSPC',
      errno: -28,
      syscall: 'write',
    });
    expect(IoError.from(full, { what: 'stdout' }).message).toBe(
      'cannot write to stdout: no space left on device; free some space there',
    );
  });
});

describe('InvalidKeyError', () => {
  it('describes any key without throwing, briefly: strings quoted, other values by kind', () => {
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const cases: Array<[unknown, string]> = [
      ['zz', '"zz"'],
      ['a"\n', '"a\\"\\n"'],
      ['x'.repeat(300), `"${'x'.repeat(200)}…"`],
      [12, '12'],
      [undefined, 'undefined'],
      [null, 'null'],
      [5n, '5n'],
      [Symbol('s'), 'Symbol(s)'],
      [() => 1, 'a function'],
      [['a'], 'an array'],
      [JSON.parse('{"toString": 0, "valueOf": 0}'), 'an object'],
      [Object.create(null), 'an object'],
      [revoked.proxy, 'an object'],
    ];
    for (const [value, described] of cases) {
      expect(new InvalidKeyError(value, 'why').message).toBe(`invalid key ${described}: why`);
    }
    expect(new InvalidKeyError(10n ** 10_000n, 'why').message.length).toBeLessThan(250);
  });
});
