import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tarn } from '../../helpers/spawn.js';
import { freshPath, tempDir } from '../../helpers/tmp.js';

const base = tempDir();

/** A local port with nothing listening on it. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise((r) => server.close(r));
  return port;
}

describe('tarn describe', () => {
  it('prints the tree with flags, and reports a missing lake without creating it', async () => {
    const dir = freshPath(base, 'describe');
    mkdirSync(dir);
    expect((await tarn(['init', join(dir, 'ssd'), '--max-size', '1G'])).code).toBe(0);
    expect((await tarn(['init', join(dir, 'hdd')])).code).toBe(0);
    const cfg = join(dir, 'tarn.yaml');
    writeFileSync(
      cfg,
      [
        'locations:',
        '  hdd: hdd',
        'location:',
        '  kind: levels',
        '  levels:',
        '    - { location: ssd, replicate: false, touch: true, name: fast }',
        '    - kind: small',
        '      maxSize: 1MiB',
        '      location: { ref: hdd }',
        '    - [{ ref: hdd }]',
        '',
      ].join('\n'),
    );
    const r = await tarn(['describe', '--storage', cfg]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      'levels',
      `  fast: disk ${join(dir, 'ssd')} [write, no replicate, touch, levels 1,-1, max 953.7 MiB]  reachable`,
      '  1: small [write, replicate, max 1.00 MiB]',
      `    disk ${join(dir, 'hdd')} [levels 1,-1]  reachable`,
      '  2: fanout [write, replicate]',
      `    disk ${join(dir, 'hdd')} [levels 1,-1]  reachable`,
      '',
    ]);

    writeFileSync(cfg, 'location: [hdd, missing]\n');
    const missing = await tarn(['describe', '-s', cfg]);
    expect(missing.code).toBe(1);
    expect(missing.stdout).toContain(
      `disk ${join(dir, 'missing')}  unreachable: no lake at ${join(dir, 'missing')}`,
    );
    const ls = await tarn(['describe', '-s', join(dir, 'nowhere')]);
    expect(ls.code).toBe(1);
    const { existsSync } = await import('node:fs');
    expect(existsSync(join(dir, 'missing'))).toBe(false);
    expect(existsSync(join(dir, 'nowhere'))).toBe(false);
  });

  it('reports an unreachable Redis and exits nonzero, also as JSON', async () => {
    const dir = freshPath(base, 'describe');
    mkdirSync(dir);
    await tarn(['init', join(dir, 'lake')]);
    const port = await closedPort();
    const cfg = join(dir, 'tarn.yaml');
    writeFileSync(
      cfg,
      `location:\n  kind: levels\n  levels:\n    - { kind: redis, url: 'redis://127.0.0.1:${port}' }\n    - lake\n`,
    );
    const started = Date.now();
    const r = await tarn(['describe', '--storage', cfg]);
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      new RegExp(`0: redis redis://127.0.0.1:${port} \\[write, replicate\\]  unreachable: `),
    );
    expect(r.stdout).toMatch(/1: disk .*lake .* reachable/);

    const json = await tarn(['describe', '--storage', cfg, '--json']);
    expect(json.code).toBe(1);
    const d = JSON.parse(json.stdout);
    expect(d).toMatchObject({
      storage: cfg,
      algorithm: 'sha256',
      reachable: false,
      location: {
        kind: 'levels',
        children: [
          {
            kind: 'redis',
            reachable: false,
            level: { index: 0, write: true, replicate: true, touch: false },
          },
          { kind: 'disk', target: join(dir, 'lake'), reachable: true, flags: { levels: [1, -1] } },
        ],
      },
    });
    expect(typeof d.location.children[0].error).toBe('string');
  });

  it('fails with exit 6 on an invalid config, naming the field', async () => {
    const cfg = join(base, 'bad.yaml');
    writeFileSync(cfg, 'location:\n  kind: levels\n  levels: [{ location: a, wirte: true }]\n');
    const r = await tarn(['describe', '-s', cfg]);
    expect(r.code).toBe(6);
    expect(r.stderr).toMatch(/location\.levels\.0: Unrecognized key: "wirte"/);
  });
});
