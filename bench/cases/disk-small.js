// 10,000 values of 1 KiB: our writes and reads beside raw fs and npm's cacache, same files, same concurrency.
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HashKeyStorage } from '@tarnjs/tarn';
import cacache from 'cacache';
import { median, pool, print, row, scratch } from '../lib.js';
import { pythonTarn, runPython } from '../python.js';

const CONCURRENCY = 16;

export async function diskSmall({ base, count, rounds }) {
  const s = scratch(base, 'bench-small-');
  try {
    const values = Array.from({ length: count }, () => randomBytes(1024));
    const opsRate = (sec) => `${Math.round(count / sec)} ops/s`;
    let n = 0;
    const fresh = (name) => () => join(s.dir, `${name}-${n++}`);

    // Raw fs: the same bytes as plain files, sharded 256 ways like a lake (no hashing, no rename).
    let rawDir;
    const rawWrite = await median(
      rounds,
      () => {
        const dir = fresh('raw')();
        for (let i = 0; i < 256; i++)
          mkdirSync(join(dir, i.toString(16).padStart(2, '0')), { recursive: true });
        rawDir = dir;
        return dir;
      },
      (dir) =>
        pool(count, CONCURRENCY, (i) =>
          writeFile(join(dir, (i % 256).toString(16).padStart(2, '0'), String(i)), values[i]),
        ),
    );
    const rawRead = await median(rounds, null, () =>
      pool(count, CONCURRENCY, (i) =>
        readFile(join(rawDir, (i % 256).toString(16).padStart(2, '0'), String(i))),
      ),
    );

    let storage;
    let keys = [];
    const tarnWrite = await median(
      rounds,
      () => {
        storage = new HashKeyStorage(fresh('lake')());
        keys = new Array(count);
        return storage;
      },
      (st) =>
        pool(count, CONCURRENCY, async (i) => {
          keys[i] = await st.write(values[i]);
        }),
    );
    const tarnRead = await median(rounds, null, () =>
      pool(count, CONCURRENCY, (i) => storage.read(keys[i], (v) => v.bytes())),
    );
    const tarnReadVerified = await median(rounds, null, () =>
      pool(count, CONCURRENCY, (i) => storage.read(keys[i], (v) => v.bytes(), { verify: true })),
    );

    let cache;
    let integrities = [];
    const cacachePut = await median(
      rounds,
      () => {
        cache = fresh('cacache')();
        integrities = new Array(count);
        return cache;
      },
      (dir) =>
        pool(count, CONCURRENCY, async (i) => {
          integrities[i] = await cacache.put(dir, `k${i}`, values[i]);
        }),
    );
    const cacacheGet = await median(rounds, null, () =>
      pool(count, CONCURRENCY, (i) => cacache.get(cache, `k${i}`)),
    );
    const cacacheByDigest = await median(rounds, null, () =>
      pool(count, CONCURRENCY, (i) => cacache.get.byDigest(cache, integrities[i])),
    );

    const rows = [
      row('raw fs writeFile', rawWrite, opsRate(rawWrite)),
      row('tarn write', tarnWrite, opsRate(tarnWrite)),
      row('cacache put', cacachePut, opsRate(cacachePut)),
      row('raw fs readFile', rawRead, opsRate(rawRead)),
      row('tarn read', tarnRead, opsRate(tarnRead)),
      row('tarn read, verify', tarnReadVerified, opsRate(tarnReadVerified)),
      row('cacache get (by key)', cacacheGet, opsRate(cacacheGet)),
      row('cacache get.byDigest', cacacheByDigest, opsRate(cacacheByDigest)),
    ];
    const ratios = [
      ['tarn write / raw fs write', tarnWrite / rawWrite],
      ['cacache put / tarn write', cacachePut / tarnWrite],
      ['tarn read / raw fs read', tarnRead / rawRead],
      ['cacache get.byDigest / tarn verified read', cacacheByDigest / tarnReadVerified],
    ];
    if (pythonTarn()) {
      const py = runPython('small', { root: join(s.dir, 'py-lake'), count });
      rows.push(row('Python tarn 0.14 write', py.write, opsRate(py.write)));
      rows.push(row('Python tarn 0.14 read', py.read, opsRate(py.read)));
      ratios.push(['Python tarn write / tarn write', py.write / tarnWrite]);
      ratios.push(['Python tarn read / tarn read', py.read / tarnRead]);
    }
    print(`${count} x 1 KiB on ${base}, ${CONCURRENCY} in flight`, rows, ratios);
    return { rows, ratios: Object.fromEntries(ratios) };
  } finally {
    s.remove();
  }
}
