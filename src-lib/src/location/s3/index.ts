import type { Readable } from 'node:stream';
import type { CompletedPart, S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { assertHexKey } from '../../digest.js';
import { AbortError, ConfigError, InvalidKeyError, throwIfAborted } from '../../errors.js';
import { CHUNK } from '../../util/chunks.js';
import { Lazy } from '../../util/lazy.js';
import { lazyStream } from '../../util/lazy-stream.js';
import { hasUserInfo } from '../../util/url.js';
import type { CommitResult, Location, OpOptions, Stage, StageOptions, Value } from '../contract.js';
import { RemoteError, remoteError } from '../remote-error.js';
import { type Spool, SpoolStage } from '../spool.js';

export interface S3LocationOptions {
  bucket: string;
  /** Object key prefix (e.g. `lake/`); objects are `<prefix><first 4 hex>/<rest>`, as Python tarn lays them out. */
  prefix?: string;
  /** A non-AWS server (MinIO, Ceph, R2, …). */
  endpoint?: string;
  /** Default: $AWS_REGION, else us-east-1. */
  region?: string;
  /** Path-style URLs (`endpoint/bucket/key`), which most non-AWS servers need. Default: true with an endpoint. */
  forcePathStyle?: boolean;
  /**
   * Explicit credentials. Normally leave this out: the standard AWS chain is used (environment,
   * shared config and credentials files, SSO, container and instance roles).
   */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  /** Values up to this size go up in one PutObject; larger ones in a streamed multipart upload. Default 16 MiB. */
  partSize?: number;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /**
   * Writes ask the server not to replace an existing object (`If-None-Match: *`), so a small value
   * goes up in one request, with no HEAD before it. Default true. A server that refuses the header
   * (501 NotImplemented) is detected at its first answer and written HEAD-then-PUT from then on.
   * Set false for a server that silently ignores the header: it would then overwrite an existing
   * object (with the same bytes) and the write would say `stored` instead of `existed`.
   */
  conditionalWrites?: boolean;
  /** Use this client instead of building one (its options then win). */
  client?: S3Client;
}

interface Named {
  name?: string;
  $metadata?: { httpStatusCode?: number };
}
const notFound = (e: unknown) =>
  (e as Named)?.name === 'NoSuchKey' ||
  (e as Named)?.name === 'NotFound' ||
  (e as Named)?.$metadata?.httpStatusCode === 404;
const status = (e: unknown) => (e as Named)?.$metadata?.httpStatusCode;
/** 412: `If-None-Match: *` found the object there; nothing was written. */
const preconditionFailed = (e: unknown) => (e as Named)?.name === 'PreconditionFailed' || status(e) === 412;
/** 409: AWS S3's answer when a conditional write races another write of the same key; retried. */
const conditionalConflict = (e: unknown) =>
  (e as Named)?.name === 'ConditionalRequestConflict' || status(e) === 409;
/**
 * A server without conditional writes answers 501 NotImplemented ("a header you provided implies
 * functionality that is not implemented", AWS S3 before 2024), some with a 400 that names the header.
 */
const refusesCondition = (e: unknown) =>
  status(e) === 501 ||
  (e as Named)?.name === 'NotImplemented' ||
  (status(e) === 400 && /if-none-match|conditional/i.test((e as Error)?.message ?? ''));

/**
 * Values up to this size are written without a HEAD first: one conditional PutObject, which stores
 * the value or answers 412 when the key exists. Sending a value this small again costs about what
 * the HEAD it saves costs (a round trip); a larger one is asked about first, so an existing key is
 * never uploaded twice.
 */
const S3_DIRECT_PUT = 256 << 10;

/**
 * Values as objects of an S3 bucket, named as Python tarn's S3 location names them
 * (`2cf2/4dba5f…`). Reads stream the object; large writes are streamed multipart uploads from the
 * local spool, never whole values in memory.
 */
export class S3Location implements Location {
  readonly kind = 's3';
  readonly target: string;
  readonly #options: S3LocationOptions;
  readonly #prefix: string;
  readonly #partSize: number;
  readonly #client = new Lazy<S3Client>();
  /**
   * Whether the server honours `If-None-Match: *` on writes: undefined until its first answer to
   * one, then decided for the life of the location (false: HEAD-then-PUT, as before conditional
   * writes).
   */
  #conditional: boolean | undefined;

  /**
   * `new S3Location({ bucket, endpoint, ... })`, or as in the original tarn,
   * `new S3Location(endpointUrl, bucket)` (a null endpoint means AWS itself).
   */
  constructor(options: S3LocationOptions);
  constructor(
    endpoint: string | null,
    bucket: string,
    options?: Omit<S3LocationOptions, 'bucket' | 'endpoint'>,
  );
  constructor(
    first: S3LocationOptions | string | null,
    bucket?: string,
    rest: Omit<S3LocationOptions, 'bucket' | 'endpoint'> = {},
  ) {
    const options: S3LocationOptions =
      first !== null && typeof first === 'object'
        ? first
        : { ...rest, bucket: bucket as string, ...(first === null ? {} : { endpoint: first }) };
    if (typeof options.bucket !== 'string' || options.bucket === '')
      throw new ConfigError('an S3 location needs a bucket', ['bucket']);
    // The endpoint is part of the target, printed in every message: a secret in it would be printed too.
    if (options.endpoint !== undefined && hasUserInfo(options.endpoint))
      throw new ConfigError(
        'credentials in the endpoint (key:secret@) would show in messages and in tarn describe; pass credentials: { accessKeyId, secretAccessKey }, or leave them to the AWS chain',
        ['endpoint'],
      );
    this.#options = options;
    this.#prefix = options.prefix ?? '';
    this.#partSize = Math.max(options.partSize ?? 16 * CHUNK, 5 * CHUNK);
    if (options.conditionalWrites === false) this.#conditional = false;
    this.target = `s3://${options.bucket}/${this.#prefix}${options.endpoint ? ` at ${options.endpoint}` : ''}`;
  }

  async #s3(): Promise<S3Client> {
    return this.#client.get(async () => {
      if (this.#options.client) return this.#options.client;
      const { S3Client: Client } = await sdk();
      const o = this.#options;
      const config: S3ClientConfig = {
        region: o.region ?? process.env.AWS_REGION ?? 'us-east-1',
        endpoint: o.endpoint,
        forcePathStyle: o.forcePathStyle ?? o.endpoint !== undefined,
        credentials: o.credentials,
        maxAttempts: 3,
        requestHandler: {
          connectionTimeout: o.connectTimeoutMs ?? 5000,
          requestTimeout: o.requestTimeoutMs ?? 60_000,
          throwOnRequestTimeout: true,
        },
      };
      return new Client(config);
    });
  }

  /** `<prefix><4 hex>/<rest>`: the layout of Python tarn's S3 location (key_to_relative(key, [2, -1])). */
  objectKey(key: string): string {
    assertHexKey(key);
    if (key.length <= 4) throw new InvalidKeyError(key, 'an S3 lake key is longer than 2 bytes');
    return `${this.#prefix}${key.slice(0, 4)}/${key.slice(4)}`;
  }

  async #send<T>(
    action: string,
    options: OpOptions | undefined,
    fn: (s3: S3Client, abortSignal?: AbortSignal) => Promise<T>,
  ): Promise<T> {
    throwIfAborted(options?.signal);
    try {
      return await fn(await this.#s3(), options?.signal);
    } catch (e) {
      throw remoteError(`s3 ${this.target}`, action, e, options?.signal);
    }
  }

  async #head(objectKey: string, options?: OpOptions): Promise<number | undefined> {
    const { HeadObjectCommand } = await sdk();
    try {
      const res = await this.#send('HEAD', options, (s3, abortSignal) =>
        s3.send(new HeadObjectCommand({ Bucket: this.#options.bucket, Key: objectKey }), { abortSignal }),
      );
      return res.ContentLength ?? 0;
    } catch (e) {
      if (notFound((e as Error).cause)) return undefined;
      throw e;
    }
  }

  async #get(
    objectKey: string,
    options?: OpOptions,
    range?: string,
  ): Promise<{ body: Readable; size: number } | null> {
    const { GetObjectCommand } = await sdk();
    try {
      const res = await this.#send('GET', options, (s3, abortSignal) =>
        s3.send(new GetObjectCommand({ Bucket: this.#options.bucket, Key: objectKey, Range: range }), {
          abortSignal,
        }),
      );
      return { body: res.Body as Readable, size: res.ContentLength ?? 0 };
    } catch (e) {
      if (notFound((e as Error).cause)) return null;
      throw e;
    }
  }

  async read(key: string, options?: OpOptions): Promise<Value | null> {
    const objectKey = this.objectKey(key);
    const first = await this.#get(objectKey, options);
    if (!first) return null;
    let unused: Readable | undefined = first.body;
    const reopen = async (signal?: AbortSignal) => {
      const again = await this.#get(objectKey, { signal });
      if (!again) throw remoteError(`s3 ${this.target}`, 'GET', new Error(`${objectKey} vanished`));
      return again.body;
    };
    return {
      size: first.size,
      // The first stream is the response already open; later ones are new GETs.
      stream: (o?: OpOptions) => {
        if (unused) {
          const body = unused;
          unused = undefined;
          return body;
        }
        return lazyStream(() => reopen(o?.signal));
      },
      // A part is a ranged GET: no byte before it crosses the network.
      range: (start: number, end: number, o?: OpOptions) => {
        unused?.destroy();
        unused = undefined;
        return lazyStream(async () => {
          const part = await this.#get(objectKey, { signal: o?.signal }, `bytes=${start}-${end}`);
          if (!part) throw remoteError(`s3 ${this.target}`, 'GET', new Error(`${objectKey} vanished`));
          return part.body;
        });
      },
      close: async () => {
        unused?.destroy();
        unused = undefined;
      },
    };
  }

  async stage(options: StageOptions = {}): Promise<Stage | null> {
    if (options.key !== undefined) this.objectKey(options.key);
    // The spool keeps a value up to 8 MiB in memory (no file), handed to the PUT as is.
    return new SpoolStage((key, spool) => this.#publish(key, spool, options));
  }

  /** Whether conditional writes are worth sending: on, and not refused by this server. */
  get #conditionalOn(): boolean {
    return this.#conditional !== false;
  }

  async #publish(key: string, spool: Spool, options: StageOptions): Promise<CommitResult> {
    const objectKey = this.objectKey(key);
    // Twice at most: a server that refuses the condition (now remembered) gets a plain write next.
    for (;;) {
      // A small value in memory goes up at once: the server's answer to If-None-Match says whether
      // the key existed. Anything larger is asked about first, so it is never uploaded twice.
      const direct = spool.memory !== undefined && spool.size <= S3_DIRECT_PUT && this.#conditionalOn;
      if (!direct && (await this.#head(objectKey, options)) !== undefined) return { status: 'existed' };
      const result =
        spool.size <= this.#partSize
          ? await this.#put(objectKey, key, spool, options)
          : await this.#multipart(objectKey, spool, options);
      if (result !== 'refused') return { status: result };
    }
  }

  /**
   * One PutObject, conditional unless the server refused the condition. 'refused' means it just
   * did (and is remembered): nothing was written, the caller writes again without it.
   */
  async #put(
    objectKey: string,
    key: string,
    spool: Spool,
    options: StageOptions,
  ): Promise<'stored' | 'existed' | 'refused'> {
    const { PutObjectCommand } = await sdk();
    const body = spool.memory ?? (await collect(spool.stream()));
    // With sha256 keys the server checks the upload against the key itself.
    const checksum =
      options.digest?.name === 'sha256' ? Buffer.from(key, 'hex').toString('base64') : undefined;
    const conditional = this.#conditionalOn;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.#send('PUT', options, (s3, abortSignal) =>
          s3.send(
            new PutObjectCommand({
              Bucket: this.#options.bucket,
              Key: objectKey,
              Body: body,
              ContentLength: spool.size,
              ChecksumSHA256: checksum,
              IfNoneMatch: conditional ? '*' : undefined,
            }),
            { abortSignal },
          ),
        );
        if (conditional) this.#conditional = true;
        return 'stored';
      } catch (e) {
        const cause = (e as Error).cause;
        if (!conditional || !(e instanceof RemoteError)) throw e;
        if (preconditionFailed(cause)) {
          this.#conditional = true;
          return 'existed';
        }
        if (refusesCondition(cause)) {
          this.#conditional = false;
          return 'refused';
        }
        // Another conditional write of this key is in flight (AWS answers 409): its outcome decides ours.
        if (conditionalConflict(cause) && attempt < 4) {
          await sleep(50 * 2 ** attempt, options.signal);
          continue;
        }
        throw e;
      }
    }
  }

  /**
   * A multipart upload streamed from the spool, two parts in flight. Its completion is conditional
   * once the server is known to honour the condition on PutObject: a writer that raced us to the
   * key then makes ours answer 412 (`existed`) instead of replacing the object. Any failure, an
   * abort included, cancels the parts in flight and aborts the upload before the write rejects, so
   * nothing is left on the server, neither an object nor a pending upload.
   */
  async #multipart(
    objectKey: string,
    spool: Spool,
    options: StageOptions,
  ): Promise<'stored' | 'existed' | 'refused'> {
    const {
      AbortMultipartUploadCommand,
      CompleteMultipartUploadCommand,
      CreateMultipartUploadCommand,
      UploadPartCommand,
    } = await sdk();
    const Bucket = this.#options.bucket;
    const Key = objectKey;
    const conditional = this.#conditional === true;
    const created = await this.#send('CreateMultipartUpload', options, (s3, abortSignal) =>
      s3.send(new CreateMultipartUploadCommand({ Bucket, Key, ChecksumAlgorithm: 'CRC32' }), { abortSignal }),
    );
    const UploadId = created.UploadId;
    if (!UploadId)
      throw remoteError(
        `s3 ${this.target}`,
        'CreateMultipartUpload',
        new Error('the answer has no UploadId'),
      );
    // Cancels the other parts when one fails, as the caller's abort does.
    const cancel = new AbortController();
    const signal = options.signal ? AbortSignal.any([options.signal, cancel.signal]) : cancel.signal;
    const parts: CompletedPart[] = [];
    const inFlight = new Set<Promise<void>>();
    let failure: unknown;
    const upload = (PartNumber: number, Body: Buffer) => {
      const sent = this.#send('UploadPart', { signal }, (s3, abortSignal) =>
        s3.send(
          new UploadPartCommand({
            Bucket,
            Key,
            UploadId,
            PartNumber,
            Body,
            ContentLength: Body.byteLength,
            ChecksumAlgorithm: 'CRC32',
          }),
          { abortSignal },
        ),
      ).then(
        (r) => {
          parts.push({ PartNumber, ETag: r.ETag, ChecksumCRC32: r.ChecksumCRC32 });
        },
        (e: unknown) => {
          failure ??= e;
          cancel.abort();
        },
      );
      inFlight.add(sent);
      void sent.finally(() => inFlight.delete(sent));
      return sent;
    };
    try {
      let number = 0;
      for await (const part of partsOf(spool.stream(), this.#partSize)) {
        if (failure !== undefined || signal.aborted) break;
        upload(++number, part);
        if (inFlight.size >= 2) await Promise.race(inFlight);
      }
      await Promise.all(inFlight);
      throwIfAborted(options.signal);
      if (failure !== undefined) throw failure;
      parts.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      await this.#send('CompleteMultipartUpload', options, (s3, abortSignal) =>
        s3.send(
          new CompleteMultipartUploadCommand({
            Bucket,
            Key,
            UploadId,
            MultipartUpload: { Parts: parts },
            IfNoneMatch: conditional ? '*' : undefined,
          }),
          { abortSignal },
        ),
      );
      return 'stored';
    } catch (e) {
      cancel.abort();
      await Promise.allSettled(inFlight);
      // Without the caller's signal: an abort is exactly when the upload must still be cleaned up.
      await this.#send('AbortMultipartUpload', undefined, (s3) =>
        s3.send(new AbortMultipartUploadCommand({ Bucket, Key, UploadId })),
      ).catch(() => undefined);
      const cause = (e as Error).cause;
      if (conditional && e instanceof RemoteError && !options.signal?.aborted) {
        if (preconditionFailed(cause)) return 'existed';
        if (refusesCondition(cause)) {
          this.#conditional = false;
          return 'refused';
        }
      }
      throw remoteError(`s3 ${this.target}`, 'multipart upload', e, options.signal);
    }
  }

  async contains(key: string, options?: OpOptions): Promise<boolean> {
    return (await this.#head(this.objectKey(key), options)) !== undefined;
  }

  async delete(key: string, options?: OpOptions): Promise<boolean> {
    const objectKey = this.objectKey(key);
    if ((await this.#head(objectKey, options)) === undefined) return false;
    const { DeleteObjectCommand } = await sdk();
    await this.#send('DELETE', options, (s3, abortSignal) =>
      s3.send(new DeleteObjectCommand({ Bucket: this.#options.bucket, Key: objectKey }), { abortSignal }),
    );
    return true;
  }

  async *keys(options?: OpOptions): AsyncIterable<string> {
    const { ListObjectsV2Command } = await sdk();
    let token: string | undefined;
    do {
      const page = await this.#send('LIST', options, (s3, abortSignal) =>
        s3.send(
          new ListObjectsV2Command({
            Bucket: this.#options.bucket,
            Prefix: this.#prefix,
            ContinuationToken: token,
          }),
          { abortSignal },
        ),
      );
      for (const o of page.Contents ?? []) {
        const m = /^([0-9a-f]{4})\/([0-9a-f]+)$/.exec((o.Key ?? '').slice(this.#prefix.length));
        if (m && (m[2] as string).length % 2 === 0) yield `${m[1]}${m[2]}`;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  /** S3 has no cheap way to record a use; answers whether the key is here. */
  async touch(key: string, options?: OpOptions): Promise<boolean> {
    return this.contains(key, options);
  }

  async close(): Promise<void> {
    const client = this.#client.take();
    if (client && !this.#options.client) (await client).destroy();
  }
}

// The SDK is loaded on first use (a lake without S3 never pays for it), then kept: a dynamic
// import() per request goes through the module loader each time (8% of a small write's CPU under
// a loader hook such as tsx's).
let sdkModule: Promise<typeof import('@aws-sdk/client-s3')> | undefined;
function sdk(): Promise<typeof import('@aws-sdk/client-s3')> {
  sdkModule ??= import('@aws-sdk/client-s3').catch((e: unknown) => {
    sdkModule = undefined;
    throw e;
  });
  return sdkModule;
}

/** Waits `ms`, or fails at once with the caller's abort. */
function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  throwIfAborted(signal);
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', aborted);
    };
    const aborted = () => {
      done();
      reject(new AbortError(signal?.reason));
    };
    const timer = setTimeout(() => {
      done();
      resolve();
    }, ms);
    signal?.addEventListener('abort', aborted, { once: true });
  });
}

/** The stream cut into parts of exactly `size` bytes (the last one shorter), each a fresh buffer. */
async function* partsOf(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let part = Buffer.allocUnsafe(size);
  let filled = 0;
  try {
    for await (const chunk of stream) {
      let c = chunk as Buffer;
      while (c.byteLength > 0) {
        const n = Math.min(size - filled, c.byteLength);
        c.copy(part, filled, 0, n);
        filled += n;
        c = c.subarray(n);
        if (filled === size) {
          yield part;
          part = Buffer.allocUnsafe(size);
          filled = 0;
        }
      }
    }
    if (filled > 0) yield part.subarray(0, filled);
  } finally {
    stream.destroy();
  }
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}
