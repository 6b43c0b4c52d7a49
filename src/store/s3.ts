/**
 * S3 object store (AWS S3, MinIO, R2, Ceph, s3rver...) through @aws-sdk/client-s3.
 *
 * Objects up to one part are sent with a single PutObject carrying their SHA-256
 * (x-amz-checksum-sha256, which S3 and MinIO verify); larger ones go through
 * lib-storage's multipart Upload, with the SHA-256 kept in metadata. Either way
 * readers verify chunk hashes at the pack layer, so a store that silently alters
 * bytes is caught on read (see COMPAT.md: the SDK's default aws-chunked checksums
 * get stored inside objects by some servers, hence 'WHEN_REQUIRED').
 */
import {
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type GetRange,
  type ObjectInfo,
  type ObjectStore,
  type ProbeResult,
  type PutBody,
  type PutOptions,
  checkBody,
  readAll,
  runProbe,
  StoreError,
  validateKey,
  validateRange,
} from './types.js';

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing '/'. */
  prefix?: string;
  /** e.g. http://127.0.0.1:9000 for MinIO; omit for AWS. */
  endpoint?: string;
  region?: string;
  /** Path-style URLs (http://host/bucket/key); needed by most non-AWS servers. */
  forcePathStyle?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** Multipart part size in bytes (default 8 MiB; S3's minimum is 5 MiB). */
  partSize?: number;
  /** Parts uploaded concurrently per object (default 4); memory is about partSize × this. */
  queueSize?: number;
  /**
   * Attempts per operation, including the first (default 6), with exponential backoff
   * between them (retryBaseMs, doubled each time up to retryMaxMs, with jitter): a
   * network outage of about 15 s is ridden out, a longer one fails with the count.
   * Each attempt is one SDK call, which itself retries a quick blip up to 3 times.
   */
  maxAttempts?: number;
  /** First backoff delay (default 500 ms). */
  retryBaseMs?: number;
  /** Longest backoff delay (default 8 s). */
  retryMaxMs?: number;
  /** Send x-amz-checksum-sha256 on single-part puts (default true); turn off for servers that reject it. */
  sendChecksum?: boolean;
  /** A ready client (tests, custom middleware); the options above then only name the bucket and prefix. */
  client?: S3Client;
}

export const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
const MIN_PART_SIZE = 5 * 1024 * 1024;
/** The SDK's own attempts per call: fast retries (~100-400 ms apart) for a dropped connection. */
const SDK_ATTEMPTS = 3;

export class S3Store implements ObjectStore {
  readonly bucket: string;
  readonly prefix: string;
  readonly client: S3Client;
  private readonly opts: S3StoreOptions;
  private readonly partSize: number;
  private readonly maxAttempts: number;

  constructor(options: S3StoreOptions) {
    if (!options.bucket) throw new StoreError('invalid', 'S3 store needs a bucket: give s3://bucket/prefix');
    this.opts = options;
    this.bucket = options.bucket;
    this.prefix = (options.prefix ?? '').replace(/^\/+|\/+$/g, '');
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
    if (!Number.isSafeInteger(this.partSize) || this.partSize < MIN_PART_SIZE) {
      throw new StoreError('invalid', `S3 part size ${this.partSize} is too small: give at least ${MIN_PART_SIZE} bytes (S3's minimum)`);
    }
    this.maxAttempts = Math.max(1, options.maxAttempts ?? 6);
    this.client = options.client ?? new S3Client(clientConfig(options, Math.min(SDK_ATTEMPTS, this.maxAttempts)));
  }

  describe(): string {
    const q = new URLSearchParams();
    if (this.opts.endpoint) q.set('endpoint', this.opts.endpoint);
    if (this.opts.region) q.set('region', this.opts.region);
    if (this.opts.forcePathStyle) q.set('forcePathStyle', 'true');
    const qs = q.toString();
    return `s3://${this.bucket}/${this.prefix}${qs ? `?${qs}` : ''}`;
  }

  private fullKey(key: string): string {
    validateKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  async put(key: string, body: PutBody, options: PutOptions = {}): Promise<void> {
    const Key = this.fullKey(key);
    const Metadata = options.sha256 ? { sha256: options.sha256.toLowerCase() } : undefined;
    const size = body instanceof Uint8Array ? body.length : options.size;
    if (body instanceof Uint8Array && options.size !== undefined && options.size !== body.length) {
      throw new StoreError('checksum', `upload of ${key} has ${body.length} bytes but ${options.size} were declared: fix the caller`, key);
    }
    const replayable = typeof body === 'function' || body instanceof Uint8Array;
    const open = (): Uint8Array | Readable => (typeof body === 'function' ? body() : (body as Uint8Array | Readable));

    if (size !== undefined && size <= this.partSize) {
      // One request. The body is read into memory first (at most one part): the SDK
      // can then retry it, and a short or long stream is caught before sending.
      const bytes = body instanceof Uint8Array ? body : await readAll(open() as AsyncIterable<Uint8Array>);
      checkBody(key, bytes.length, options.sha256 ? createHash('sha256').update(bytes).digest('hex') : '', { ...options, size });
      // The bytes are in memory: every attempt sends them again from the start.
      await this.withRetry(key, 'upload', true, () =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: bytes,
            ContentLength: size,
            Metadata,
            // S3 and MinIO verify this header and refuse a body that does not match.
            ...(options.sha256 && this.opts.sendChecksum !== false
              ? { ChecksumSHA256: Buffer.from(options.sha256, 'hex').toString('base64') }
              : {}),
          }),
        ),
      );
      return;
    }

    const upload = async (): Promise<void> => {
      const u = new Upload({
        client: this.client,
        partSize: this.partSize,
        queueSize: this.opts.queueSize ?? 4,
        // Failed multipart uploads are aborted so no invisible parts keep costing money.
        leavePartsOnError: false,
        params: { Bucket: this.bucket, Key, Body: open(), Metadata },
      });
      await u.done();
    };
    await this.withRetry(key, 'upload', replayable, upload);
    if (size !== undefined) {
      const h = await this.head(key);
      if (!h || h.size !== size) {
        throw new StoreError('checksum', `upload of ${key} stored ${h?.size ?? 'no'} bytes but ${size} were sent: the server or a proxy altered it; retry`, key);
      }
    }
  }

  async get(key: string, range?: GetRange): Promise<Readable> {
    validateRange(key, range);
    const Key = this.fullKey(key);
    const Range = range && (range.start !== undefined || range.end !== undefined) ? `bytes=${range.start ?? 0}-${range.end ?? ''}` : undefined;
    const res = await this.withRetry(key, 'read', true, () => this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range })));
    const body = res.Body;
    if (!body) throw new StoreError('io', `read of ${key} returned no body: check the S3 endpoint`, key);
    if (body instanceof Readable) return body;
    return Readable.fromWeb((body as { transformToWebStream(): ReadableStream }).transformToWebStream() as never);
  }

  async head(key: string): Promise<{ size: number } | null> {
    const Key = this.fullKey(key);
    try {
      const res = await this.withRetry(key, 'read', true, () => this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key })));
      return { size: Number(res.ContentLength ?? 0) };
    } catch (e) {
      if (e instanceof StoreError && e.code === 'not_found') return null;
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    const Key = this.fullKey(key);
    await this.withRetry(key, 'delete', true, () => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key })));
  }

  async *list(prefix = ''): AsyncIterable<ObjectInfo> {
    const full = this.prefix ? `${this.prefix}/${prefix}` : prefix;
    const strip = this.prefix ? this.prefix.length + 1 : 0;
    let token: string | undefined;
    do {
      const res = await this.withRetry(prefix || '(all)', 'list', true, () =>
        this.client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: full, ContinuationToken: token })),
      );
      for (const o of res.Contents ?? []) {
        if (o.Key) yield { key: o.Key.slice(strip), size: Number(o.Size ?? 0) };
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
  }

  probe(): Promise<ProbeResult> {
    return runProbe(this);
  }

  async close(): Promise<void> {
    if (!this.opts.client) this.client.destroy();
  }

  /**
   * Retries transient failures (network, 5xx, throttling) with exponential backoff
   * and jitter, up to maxAttempts; then throws one error saying how many attempts
   * over how long. Every operation here is idempotent (a put of the same key and
   * bytes, a read not yet consumed, a delete, a list page), so each is retried when
   * its body can be sent again; only a one-shot stream cannot.
   */
  private async withRetry<T>(key: string, op: Op, replayable: boolean, fn: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    const base = this.opts.retryBaseMs ?? 500;
    const max = this.opts.retryMaxMs ?? 8_000;
    for (let i = 1; ; i++) {
      try {
        return await fn();
      } catch (e) {
        const err = e instanceof StoreError ? e : mapS3Error(e, key, op, this.bucket, { endpoint: this.opts.endpoint });
        const transient = err.code === 'network' || (err.code === 'io' && isServerError(e));
        if (!transient || !replayable || i >= this.maxAttempts) {
          if (!transient || i === 1 || e instanceof StoreError) throw err;
          throw mapS3Error(e, key, op, this.bucket, { endpoint: this.opts.endpoint, attempts: i, ms: Date.now() - t0 });
        }
        await sleep(Math.min(max, base * 2 ** (i - 1)) * (0.5 + Math.random()));
      }
    }
  }
}

type Op = 'upload' | 'read' | 'delete' | 'list';

function clientConfig(o: S3StoreOptions, sdkAttempts: number): S3ClientConfig {
  // pgdv pins SDK 3.1169 and supports Node 20 (COMPAT.md), so the SDK's "future
  // releases will need Node 22" warning on every CLI run tells users nothing they can
  // act on. Setting the variable to anything else shows it again.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const config: S3ClientConfig = {
    region: o.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1',
    endpoint: o.endpoint,
    forcePathStyle: o.forcePathStyle,
    maxAttempts: sdkAttempts,
    // COMPAT.md: the default CRC + aws-chunked encoding gets stored inside objects by
    // some S3-compatible servers (s3rver, older R2); send checksums only where required.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // Fail fast on an unreachable endpoint instead of hanging; idle sockets time out
    // after a minute so a stalled transfer surfaces as a network error and is retried.
    requestHandler: { connectionTimeout: 5_000, socketTimeout: 60_000 },
  };
  // Without explicit keys the SDK's default chain reads AWS_ACCESS_KEY_ID /
  // AWS_SECRET_ACCESS_KEY / AWS_PROFILE / instance roles.
  if (o.accessKeyId && o.secretAccessKey) {
    config.credentials = { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey, sessionToken: o.sessionToken };
  }
  return config;
}

interface SdkError {
  name?: string;
  Code?: string;
  code?: string;
  message?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: string;
  cause?: unknown;
}

function isServerError(e: unknown): boolean {
  const s = (e as SdkError)?.$metadata?.httpStatusCode;
  return s !== undefined && (s >= 500 || s === 429);
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

/** What withRetry knows when it gives up: the endpoint, and how many attempts over how long. */
export interface S3ErrorContext {
  endpoint?: string;
  attempts?: number;
  ms?: number;
}

/** Maps SDK and socket errors to StoreError codes with a message saying what to do. */
export function mapS3Error(e: unknown, key: string, op: Op, bucket: string, ctx: S3ErrorContext = {}): StoreError {
  if (e instanceof StoreError) return e;
  const err = (e ?? {}) as SdkError;
  const name = err.name ?? err.Code ?? '';
  const status = err.$metadata?.httpStatusCode;
  const sysCode = err.code ?? (err.cause as SdkError | undefined)?.code;
  const msg = (err.message ?? String(e)).split('\n')[0] ?? '';
  const opts = { cause: e };
  const tries = ctx.attempts && ctx.attempts > 1 ? `${ctx.attempts} attempts over ${Math.round((ctx.ms ?? 0) / 1000)} s` : '';
  if (name === 'NoSuchBucket') {
    return new StoreError('no_bucket', `bucket ${bucket} does not exist (while trying to ${op} ${key}): create it or fix the store URL`, key, opts);
  }
  if (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchUpload')) {
    return new StoreError('not_found', `object ${key} not found in bucket ${bucket}: it was never written or was deleted (run pgdv verify)`, key, opts);
  }
  if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden', 'ExpiredToken', 'InvalidToken', 'CredentialsProviderError'].includes(name) || status === 403) {
    return new StoreError('auth', `access to ${key} in bucket ${bucket} was denied (${name || status}): check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and the bucket policy`, key, opts);
  }
  if ((sysCode && NETWORK_CODES.has(sysCode)) || name === 'TimeoutError' || name === 'RequestTimeout' || /socket hang up|ECONNREFUSED|ENOTFOUND/.test(msg)) {
    const where = ctx.endpoint ? ` ${ctx.endpoint}` : '';
    return new StoreError('network', `could not reach the S3 endpoint${where} to ${op} ${key} (${[sysCode ?? name, tries].filter(Boolean).join(', ')})`, key, opts);
  }
  if (name === 'InvalidRange' || status === 416) {
    return new StoreError('invalid', `byte range asked of ${key} lies past its end: the index and the object disagree; run pgdv verify`, key, opts);
  }
  if (name === 'BadDigest' || name === 'InvalidDigest' || name === 'XAmzContentSHA256Mismatch') {
    return new StoreError('checksum', `the server rejected ${key}: the bytes sent do not match their SHA-256 (${name}); retry, and check for a proxy altering uploads`, key, opts);
  }
  return new StoreError('io', `${op} of ${key} in bucket ${bucket} failed: ${name ? `${name}: ` : ''}${msg}${tries ? ` (${tries})` : ''}`, key, opts);
}
