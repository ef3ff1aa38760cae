import type { Readable } from 'node:stream';
import type { S3Client, S3ClientConfig } from '@aws-sdk/client-s3';
import { assertHexKey } from '../../digest.js';
import { ConfigError, InvalidKeyError, throwIfAborted } from '../../errors.js';
import { CHUNK } from '../../util/chunks.js';
import { Lazy } from '../../util/lazy.js';
import { lazyStream } from '../../util/lazy-stream.js';
import { hasUserInfo } from '../../util/url.js';
import type { CommitResult, Location, OpOptions, Stage, StageOptions, Value } from '../contract.js';
import { remoteError } from '../remote-error.js';
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
    this.target = `s3://${options.bucket}/${this.#prefix}${options.endpoint ? ` at ${options.endpoint}` : ''}`;
  }

  async #s3(): Promise<S3Client> {
    return this.#client.get(async () => {
      if (this.#options.client) return this.#options.client;
      const { S3Client: Client } = await import('@aws-sdk/client-s3');
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
    const { HeadObjectCommand } = await import('@aws-sdk/client-s3');
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
    const { GetObjectCommand } = await import('@aws-sdk/client-s3');
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
    return new SpoolStage((key, spool) => this.#publish(key, spool, options));
  }

  async #publish(key: string, spool: Spool, options: StageOptions): Promise<CommitResult> {
    const { digest } = options;
    const objectKey = this.objectKey(key);
    if ((await this.#head(objectKey, options)) !== undefined) return { status: 'existed' };
    const { bucket } = this.#options;
    if (spool.size <= this.#partSize) {
      const { PutObjectCommand } = await import('@aws-sdk/client-s3');
      const body = spool.memory ?? (await collect(spool.stream()));
      // With sha256 keys the server checks the upload against the key itself.
      const checksum = digest?.name === 'sha256' ? Buffer.from(key, 'hex').toString('base64') : undefined;
      await this.#send('PUT', options, (s3, abortSignal) =>
        s3.send(
          new PutObjectCommand({
            Bucket: bucket,
            Key: objectKey,
            Body: body,
            ContentLength: spool.size,
            ChecksumSHA256: checksum,
          }),
          { abortSignal },
        ),
      );
    } else {
      const { Upload } = await import('@aws-sdk/lib-storage');
      await this.#send('multipart upload', options, async (s3, abortSignal) => {
        const upload = new Upload({
          client: s3,
          params: { Bucket: bucket, Key: objectKey, Body: spool.stream() },
          partSize: this.#partSize,
          queueSize: 2,
          leavePartsOnError: false,
        });
        const abort = () => void upload.abort();
        abortSignal?.addEventListener('abort', abort, { once: true });
        try {
          await upload.done();
        } finally {
          // A long-lived signal must not keep every finished upload alive.
          abortSignal?.removeEventListener('abort', abort);
        }
      });
    }
    return { status: 'stored' };
  }

  async contains(key: string, options?: OpOptions): Promise<boolean> {
    return (await this.#head(this.objectKey(key), options)) !== undefined;
  }

  async delete(key: string, options?: OpOptions): Promise<boolean> {
    const objectKey = this.objectKey(key);
    if ((await this.#head(objectKey, options)) === undefined) return false;
    const { DeleteObjectCommand } = await import('@aws-sdk/client-s3');
    await this.#send('DELETE', options, (s3, abortSignal) =>
      s3.send(new DeleteObjectCommand({ Bucket: this.#options.bucket, Key: objectKey }), { abortSignal }),
    );
    return true;
  }

  async *keys(options?: OpOptions): AsyncIterable<string> {
    const { ListObjectsV2Command } = await import('@aws-sdk/client-s3');
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

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(c as Buffer);
  return Buffer.concat(parts);
}
