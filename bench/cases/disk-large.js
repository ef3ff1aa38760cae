// A large file: our write (hash + copy in one pass) and read, beside openssl dgst, cp, tee | openssl and
// raw fs streams. Rounds are interleaved (every variant once per round) and the page cache's dirty
// pages are flushed before each timed writer, so no writer pays for the writeback of the one before.
import { spawnSync } from 'node:child_process';
import { createReadStream, createWriteStream, rmSync } from 'node:fs';
import { join } from 'node:path';
import { HashKeyStorage } from '@tarnjs/tarn';
import { MiB, print, row, scratch } from '../lib.js';
import { pythonTarn, runPython } from '../python.js';

const drain = async (stream) => {
  for await (const _ of stream) {
    // read to the end
  }
};
const sh = (cmd) => {
  const r = spawnSync('sh', ['-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
  if (r.status !== 0) throw new Error(`${cmd}: ${r.stderr}`);
};
const secondsOf = async (fn) => {
  const t = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t) / 1e9;
};

export async function diskLarge({ base, mib, rounds }) {
  const s = scratch(base, 'bench-large-');
  try {
    const file = join(s.dir, 'big.bin');
    // Random-looking data, written in 64 MiB pieces so the generator stays cheap.
    const piece = Buffer.alloc(64 * MiB);
    for (let i = 0; i < piece.length; i += 4) piece.writeUInt32LE((i * 2654435761) >>> 0, i);
    const out = createWriteStream(file);
    for (let i = 0; i < mib / 64; i++) {
      piece.writeUInt32LE(i, 0);
      if (!out.write(piece)) await new Promise((r) => out.once('drain', r));
    }
    await new Promise((r) => out.end(r));
    const bytes = mib * MiB;
    const rate = (sec) => `${(bytes / MiB / sec).toFixed(0)} MiB/s`;
    const dest = join(s.dir, 'dest');

    let key;
    let lake;
    const variants = {
      'openssl dgst -sha256': { run: () => sh(`openssl dgst -sha256 ${file}`) },
      cp: { writes: true, run: () => sh(`cp ${file} ${dest}`) },
      'tee | openssl dgst (copy + hash)': {
        writes: true,
        run: () => sh(`tee ${dest} < ${file} | openssl dgst -sha256`),
      },
      'tarn write(path)': {
        writes: true,
        run: async () => {
          lake = join(s.dir, 'lake');
          key = await new HashKeyStorage(lake).write(file);
        },
      },
      'raw fs read (1 MiB chunks)': { run: () => drain(createReadStream(file, { highWaterMark: MiB })) },
      'tarn read stream': { run: () => new HashKeyStorage(lake).read(key, (v) => drain(v.stream())) },
      'tarn read stream, verify': {
        run: () => new HashKeyStorage(lake).read(key, (v) => drain(v.stream()), { verify: true }),
      },
    };
    if (pythonTarn()) {
      variants['Python tarn 0.14 write(path)'] = {
        writes: true,
        external: () => runPython('large', { root: join(s.dir, 'py-lake'), file }).write,
      };
    }
    const times = Object.fromEntries(Object.keys(variants).map((k) => [k, []]));
    for (let r = 0; r < rounds; r++) {
      for (const [name, v] of Object.entries(variants)) {
        if (v.writes) {
          rmSync(dest, { force: true });
          rmSync(join(s.dir, 'lake'), { recursive: true, force: true });
          rmSync(join(s.dir, 'py-lake'), { recursive: true, force: true });
          sh('sync');
        }
        times[name].push(v.external ? v.external() : await secondsOf(v.run));
      }
    }
    const med = (name) => {
      const t = [...times[name]].sort((a, b) => a - b);
      return t[Math.floor(t.length / 2)];
    };
    const rows = Object.keys(variants).map((name) => row(name, med(name), rate(med(name))));
    const w = med('tarn write(path)');
    const ratios = [
      ['tarn write / openssl dgst', w / med('openssl dgst -sha256')],
      ['tarn write / cp', w / med('cp')],
      ['tarn write / tee | openssl dgst', w / med('tee | openssl dgst (copy + hash)')],
      ['tarn read / raw fs read', med('tarn read stream') / med('raw fs read (1 MiB chunks)')],
      ['tarn verified read / openssl dgst', med('tarn read stream, verify') / med('openssl dgst -sha256')],
    ];
    if (pythonTarn())
      ratios.push(['Python tarn write / tarn write', med('Python tarn 0.14 write(path)') / w]);
    print(
      `${mib} MiB file on ${base} (interleaved rounds, dirty pages flushed before each writer)`,
      rows,
      ratios,
    );
    return { rows, ratios: Object.fromEntries(ratios) };
  } finally {
    s.remove();
  }
}
