/**
 * The object store a pgdv home uses: config.json's store (written by `pgdv init
 * --store`), with S3 settings from the config overridden by the environment
 * (PGDV_S3_ENDPOINT, PGDV_S3_REGION / AWS_REGION, PGDV_S3_FORCE_PATH_STYLE,
 * AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), so a CI job can point the same home
 * at another endpoint without editing the file.
 */
import path from 'node:path';
import type { PgdvConfig } from '../db/home.js';
import { PgdvError } from '../lib/errors.js';
import { openStore, StoreError, type ObjectStore } from '../store/index.js';

export const DEFAULT_STORE = 'objects';

/** A folder in config.json is relative to the home folder; URLs pass through. */
export function resolveStoreUrl(home: string, spec: string): string {
  if (/^s3:\/\//i.test(spec)) return spec;
  // file://objects (what an embedded setup records) is relative to the home; file:///abs is absolute.
  if (spec.startsWith('file://')) return path.resolve(home, spec.slice('file://'.length));
  return path.resolve(home, spec);
}

type S3Settings = NonNullable<PgdvConfig['store']['s3']>;

/** Env over config; pure so it is testable. */
export function s3Settings(cfg: S3Settings | undefined, env: NodeJS.ProcessEnv): S3Settings {
  const bool = (v: string | undefined): boolean | undefined => (v === undefined || v === '' ? undefined : /^(1|true|yes|on)$/i.test(v));
  return {
    endpoint: env.PGDV_S3_ENDPOINT || cfg?.endpoint,
    region: env.PGDV_S3_REGION || env.AWS_REGION || cfg?.region,
    forcePathStyle: bool(env.PGDV_S3_FORCE_PATH_STYLE) ?? cfg?.forcePathStyle,
  };
}

/**
 * PGDV_S3_MAX_ATTEMPTS: attempts per S3 operation before a network failure is
 * reported (default 6: about 15 s of backoff); raise it on a flaky link, lower it to
 * fail fast. Pure, so it is testable.
 */
export function s3MaxAttempts(env: NodeJS.ProcessEnv): number | undefined {
  const v = env.PGDV_S3_MAX_ATTEMPTS;
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1 || n > 100) {
    throw new PgdvError(`PGDV_S3_MAX_ATTEMPTS=${v} is invalid`, { kind: 'usage', hint: 'Give a whole number of attempts from 1 to 100 (default 6), or unset it' });
  }
  return n;
}

export interface StoreSelection {
  url: string;
  s3?: S3Settings;
}

/** Opens the store named by a home's config (or the default <home>/objects). */
export function openHomeStore(home: string, config: PgdvConfig | undefined, env: NodeJS.ProcessEnv = process.env): ObjectStore {
  const url = resolveStoreUrl(home, env.PGDV_STORE || config?.store.url || DEFAULT_STORE);
  try {
    if (/^s3:/i.test(url)) {
      const s = s3Settings(config?.store.s3, env);
      return openStore(url, {
        endpoint: s.endpoint,
        region: s.region ?? 'us-east-1',
        forcePathStyle: s.forcePathStyle,
        accessKeyId: env.AWS_ACCESS_KEY_ID,
        secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
        maxAttempts: s3MaxAttempts(env),
      });
    }
    return openStore(url);
  } catch (e) {
    if (e instanceof StoreError) throw storeError(e);
    throw e;
  }
}

/** A StoreError as a PgdvError with what to do. */
export function storeError(e: StoreError, context?: string): PgdvError {
  const hints: Record<string, string> = {
    no_bucket: 'Create the bucket, or fix the bucket name with `pgdv init --store s3://BUCKET/PREFIX`',
    auth: 'Check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and the bucket policy)',
    network: 'Check the endpoint (--s3-endpoint / PGDV_S3_ENDPOINT) and the network, then run the same command again: it resumes',
    disk_full: 'Free some space and run the command again',
    not_found: 'Run `pgdv doctor`; restore the object or re-add the files that use it',
    checksum: 'Run the command again; if it persists, the store alters data',
    invalid: 'Fix the store settings with `pgdv init --store`',
    io: 'Check the store with `pgdv doctor`',
  };
  const kind = e.code === 'auth' ? 'auth' : e.code === 'not_found' || e.code === 'no_bucket' ? 'not_found' : e.code === 'invalid' ? 'usage' : 'io';
  return new PgdvError(context ? `${context}: ${e.message}` : e.message, { kind, hint: hints[e.code], cause: e });
}
