import { PassThrough, type Readable } from 'node:stream';
import { CHUNK } from './chunks.js';

/** A Readable available at once whose source is opened asynchronously (a second GET of a remote value). */
export function lazyStream(open: () => Promise<Readable>): Readable {
  const out = new PassThrough({ highWaterMark: CHUNK });
  open().then(
    (src) => {
      src.on('error', (e) => out.destroy(e));
      src.pipe(out);
    },
    (e: Error) => out.destroy(e),
  );
  return out;
}
