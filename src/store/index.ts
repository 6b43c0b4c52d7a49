/**
 * Store URLs: `file:///abs/path`, a plain path (relative to cwd), or
 * `s3://bucket/prefix?endpoint=http://host:9000&region=us-east-1&forcePathStyle=true`.
 * S3 settings missing from the URL and options come from the environment:
 * PGDV_S3_ENDPOINT, AWS_REGION, PGDV_S3_FORCE_PATH_STYLE, AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY (credentials are never taken from the URL, so a URL can be
 * logged and stored in the catalog).
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FsStore } from './fs.js';
import { S3Store, type S3StoreOptions } from './s3.js';
import { StoreError, type ObjectStore } from './types.js';

export * from './types.js';
export { FsStore, type FsStoreOptions } from './fs.js';
export { S3Store, mapS3Error, DEFAULT_PART_SIZE, type S3StoreOptions } from './s3.js';

export type StoreSpec =
  | { kind: 'fs'; root: string }
  | {
      kind: 's3';
      bucket: string;
      prefix: string;
      endpoint?: string;
      region?: string;
      forcePathStyle?: boolean;
      accessKeyId?: string;
      secretAccessKey?: string;
      partSize?: number;
    };

export interface S3SpecOptions {
  endpoint?: string;
  region?: string;
  forcePathStyle?: boolean;
  accessKeyId?: string;
  secretAccessKey?: string;
  partSize?: number;
}

type Env = Record<string, string | undefined>;

/**
 * Parses a store spec into settings; pure (env and cwd are arguments) so it is
 * testable. Precedence: explicit options, then URL query, then environment.
 */
export function parseStoreSpec(spec: string, options: S3SpecOptions = {}, env: Env = process.env, cwd = process.cwd()): StoreSpec {
  const s = spec.trim();
  if (!s) throw new StoreError('invalid', 'store spec is empty: give a folder path, file:///abs/path or s3://bucket/prefix');
  if (/^file:/i.test(s)) {
    let root: string;
    try {
      root = fileURLToPath(s);
    } catch (e) {
      throw new StoreError('invalid', `store spec ${s} is not a valid file URL: use file:///absolute/path`, undefined, { cause: e });
    }
    return { kind: 'fs', root: path.normalize(root) };
  }
  if (/^s3:/i.test(s)) {
    const m = /^s3:\/\/([^/?#]+)\/?([^?#]*)(?:\?([^#]*))?$/i.exec(s);
    if (!m) throw new StoreError('invalid', `store spec ${s} is not a valid S3 URL: use s3://bucket/optional/prefix`);
    const bucket = m[1]!;
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
      throw new StoreError('invalid', `bucket name ${JSON.stringify(bucket)} in ${s} is invalid: use 3-63 lowercase letters, digits, '.' and '-'`);
    }
    const q = new URLSearchParams(m[3] ?? '');
    for (const k of q.keys()) {
      if (!['endpoint', 'region', 'forcePathStyle', 'partSize'].includes(k)) {
        throw new StoreError('invalid', `store spec ${s} has unknown setting ${k}: use endpoint, region, forcePathStyle or partSize (credentials go in AWS_* variables)`);
      }
    }
    const endpoint = options.endpoint ?? q.get('endpoint') ?? env.PGDV_S3_ENDPOINT ?? undefined;
    if (endpoint !== undefined && !/^https?:\/\/[^/]+/.test(endpoint)) {
      throw new StoreError('invalid', `S3 endpoint ${JSON.stringify(endpoint)} is invalid: use http(s)://host[:port]`);
    }
    const fps = options.forcePathStyle ?? parseBool(q.get('forcePathStyle') ?? env.PGDV_S3_FORCE_PATH_STYLE, 'forcePathStyle');
    const partText = q.get('partSize');
    const partSize = options.partSize ?? (partText ? Number(partText) : undefined);
    if (partSize !== undefined && (!Number.isSafeInteger(partSize) || partSize <= 0)) {
      throw new StoreError('invalid', `S3 partSize ${String(partText ?? partSize)} is invalid: give a byte count of at least 5242880`);
    }
    return {
      kind: 's3',
      bucket,
      prefix: decodeURIComponent(m[2] ?? '').replace(/^\/+|\/+$/g, ''),
      endpoint,
      region: options.region ?? q.get('region') ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? undefined,
      // A custom endpoint is almost always MinIO-like, which needs path style.
      forcePathStyle: fps ?? (endpoint !== undefined ? true : undefined),
      accessKeyId: options.accessKeyId ?? env.AWS_ACCESS_KEY_ID ?? undefined,
      secretAccessKey: options.secretAccessKey ?? env.AWS_SECRET_ACCESS_KEY ?? undefined,
      partSize,
    };
  }
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) {
    throw new StoreError('invalid', `store spec ${s} uses an unsupported scheme: use a folder path, file:// or s3://`);
  }
  return { kind: 'fs', root: path.resolve(cwd, s) };
}

function parseBool(v: string | null | undefined, name: string): boolean | undefined {
  if (v === null || v === undefined || v === '') return undefined;
  if (/^(1|true|yes|on)$/i.test(v)) return true;
  if (/^(0|false|no|off)$/i.test(v)) return false;
  throw new StoreError('invalid', `${name}=${v} is not a boolean: use true or false`);
}

/** Opens the store a spec names (see parseStoreSpec for the spec forms). */
export function openStore(spec: string, options: S3SpecOptions & Partial<Pick<S3StoreOptions, 'queueSize' | 'maxAttempts'>> = {}): ObjectStore {
  const p = parseStoreSpec(spec, options);
  if (p.kind === 'fs') return new FsStore(p.root);
  return new S3Store({ ...p, queueSize: options.queueSize, maxAttempts: options.maxAttempts });
}
