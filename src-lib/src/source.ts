import { open } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { SourceError } from './errors.js';
import { coalesce, readChunks } from './util/chunks.js';

/** Everything `HashKeyStorage.write` accepts. A string is a file path. */
export type WriteSource =
  | string
  | Uint8Array
  | Readable
  | ReadableStream<Uint8Array>
  | AsyncIterable<Uint8Array>;

export interface OpenedSource {
  /** The whole value, when it is already in memory. */
  readonly whole?: Uint8Array;
  /** Exact size, when known before reading. */
  readonly size?: number;
  /** True when the bytes can be read again from the start (a file or a buffer). */
  readonly replayable: boolean;
  readonly chunks: AsyncIterator<Uint8Array>;
  close(): Promise<void>;
}

export async function openSource(source: WriteSource, signal?: AbortSignal): Promise<OpenedSource> {
  if (source instanceof Uint8Array) {
    return {
      whole: source,
      size: source.byteLength,
      replayable: true,
      chunks: (async function* () {
        yield source;
      })(),
      close: async () => undefined,
    };
  }
  if (typeof source === 'string') return openFile(source, signal);
  let readable: Readable | undefined;
  if (source instanceof Readable) {
    readable = source;
  } else if (isWebStream(source)) {
    readable = Readable.fromWeb(source as import('node:stream/web').ReadableStream);
  } else if (!(source && typeof (source as AsyncIterable<Uint8Array>)[Symbol.asyncIterator] === 'function')) {
    throw new SourceError(
      'unsupported source: pass a file path, a Buffer/Uint8Array, a Readable, a web ReadableStream or an AsyncIterable of Uint8Array',
    );
  }
  // Node streams hand out fresh buffers, pipes in 64 KiB pieces: coalesce them into ~1 MiB chunks.
  const chunks = coalesce(readable ?? (source as AsyncIterable<Uint8Array>))[Symbol.asyncIterator]();
  return {
    replayable: false,
    chunks,
    close: async () => {
      // Destroy first: a read may still be pending (an abort), and return() would wait for it.
      if (readable && !readable.destroyed) readable.destroy();
      // A plain iterable cannot be interrupted; its return() runs when its pending step settles.
      chunks.return(undefined).catch(() => undefined);
    },
  };
}

function isWebStream(x: unknown): x is ReadableStream<Uint8Array> {
  return typeof x === 'object' && x !== null && typeof (x as ReadableStream).getReader === 'function';
}

async function openFile(path: string, signal?: AbortSignal): Promise<OpenedSource> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new SourceError(`cannot open ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const st = await fh.stat();
    if (st.isDirectory()) throw new SourceError(`${path} is a directory; tarn stores files`);
    // FIFOs and character devices (a pipe, /dev/stdin) have no meaningful size and cannot be replayed.
    const regular = st.isFile();
    const chunks = readChunks(fh, signal);
    return {
      size: regular ? st.size : undefined,
      replayable: regular,
      chunks,
      close: async () => {
        await chunks.return(undefined);
        await fh.close();
      },
    };
  } catch (e) {
    await fh.close();
    throw e;
  }
}
