// A 1 GiB file: our write (hash + copy in one pass) and read, beside openssl dgst, cp and raw fs streams.
import { createReadStream, createWriteStream } from 'node:fs';
import { join } from 'node:path';
import { HashKeyStorage } from '@tarnjs/tarn';
import { MiB, median, print, row, scratch, timeCommand } from '../lib.js';
import { pythonTarn, runPython } from '../python.js';

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

    const openssl = timeCommand('openssl', ['dgst', '-sha256', file], rounds);
    const cp = timeCommand('cp', [file, join(s.dir, 'cp.bin')], rounds);
    // The same work as a put, in one pass, by the best tools at hand: copy and hash together.
    const teeCmd = `tee ${join(s.dir, 'tee.bin')} < ${file} | openssl dgst -sha256`;
    const tee = timeCommand('sh', ['-c', teeCmd], rounds);
    const rawRead = await median(rounds, null, async () => {
      for await (const _ of createReadStream(file, { highWaterMark: MiB })) {
        // drain
      }
    });
    let n = 0;
    let key;
    const write = await median(
      rounds,
      () => new HashKeyStorage(join(s.dir, `lake-${n++}`)),
      async (st) => {
        key = await st.write(file);
      },
    );
    const storage = new HashKeyStorage(join(s.dir, `lake-${n - 1}`));
    const read = await median(rounds, null, () =>
      storage.read(key, async (v) => {
        for await (const _ of v.stream()) {
          // drain
        }
      }),
    );
    const readVerified = await median(rounds, null, () =>
      storage.read(
        key,
        async (v) => {
          for await (const _ of v.stream()) {
            // drain
          }
        },
        { verify: true },
      ),
    );
    const rows = [
      row('openssl dgst -sha256', openssl, rate(openssl)),
      row('cp', cp, rate(cp)),
      row('tee | openssl dgst (copy + hash)', tee, rate(tee)),
      row('raw fs read (1 MiB chunks)', rawRead, rate(rawRead)),
      row('tarn write(path)', write, rate(write)),
      row('tarn read stream', read, rate(read)),
      row('tarn read stream, verify', readVerified, rate(readVerified)),
    ];
    const ratios = [
      ['tarn write / openssl dgst', write / openssl],
      ['tarn write / cp', write / cp],
      ['tarn write / tee | openssl dgst', write / tee],
      ['tarn read / raw fs read', read / rawRead],
      ['tarn verified read / openssl dgst', readVerified / openssl],
    ];
    if (pythonTarn()) {
      const py = runPython('large', { root: join(s.dir, 'py-lake'), file });
      rows.push(row('Python tarn 0.14 write(path)', py.write, rate(py.write)));
      ratios.push(['Python tarn write / tarn write', py.write / write]);
    }
    print(`${mib} MiB file on ${base}`, rows, ratios);
    return { rows, ratios: Object.fromEntries(ratios) };
  } finally {
    s.remove();
  }
}
