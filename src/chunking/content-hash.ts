/**
 * A file's content hash: SHA-256 over its chunk list, not over its bytes.
 *
 *   content_hash = hex(SHA-256( "pgdv-content-v1\n" || d1 || d2 || ... || dn ))
 *
 * where "pgdv-content-v1\n" is those 16 ASCII bytes and d1..dn are the raw 32-byte
 * SHA-256 digests of the file's chunks in file order (the `chunk_hash` values of
 * dv_files.content_chunks ordered by seq, decoded from hex). This holds for every
 * file: a small file (one chunk) hashes to SHA-256(tag || SHA-256(bytes)), an empty
 * file (no chunks) to SHA-256(tag).
 *
 * Why: each byte is then SHA-256-hashed once (per chunk), not twice (per chunk and
 * for the whole file); the second pass capped chunking + hashing below 50% of raw
 * SHA-256 throughput on one core. Checkout verifies each chunk against its digest
 * and the file from the chunk digests, again one pass. Two files with the same
 * content hash have the same chunk list, hence the same bytes (SHA-256 collision
 * resistance); the tag keeps these hashes apart from plain SHA-256 digests of the
 * same 32·n bytes. Because it is applied to every file, also one-chunk ones, a file
 * can never be crafted whose plain SHA-256 names another file's content.
 *
 * A DBA can recompute it in SQL:
 *
 *   SELECT encode(sha256(convert_to(E'pgdv-content-v1\n', 'UTF8')
 *          || coalesce(string_agg(decode(chunk_hash, 'hex'), ''::bytea ORDER BY seq), ''::bytea)), 'hex')
 *   FROM dv_files.content_chunks WHERE content_hash = '...';
 *
 * It is not what `sha256sum` prints: `pgdv blob put` reports that too (the `sha256`
 * of its result) for model registries that expect it.
 */
import { createHash } from 'node:crypto';

export const CONTENT_HASH_TAG = 'pgdv-content-v1\n';
const TAG = Buffer.from(CONTENT_HASH_TAG, 'latin1');

/** Builds a content hash from chunk digests as they come. */
export class ContentHasher {
  private readonly h = createHash('sha256').update(TAG);

  /** The next chunk's SHA-256: 32 raw bytes, or 64 hex digits. */
  add(chunkDigest: Uint8Array | string): this {
    this.h.update(typeof chunkDigest === 'string' ? Buffer.from(chunkDigest, 'hex') : chunkDigest);
    return this;
  }

  /** Lowercase hex. */
  digest(): string {
    return this.h.digest('hex');
  }
}

/** The content hash of a file with these chunk hashes (hex), in order. */
export function contentHashOf(chunkHashes: Iterable<string>): string {
  const h = new ContentHasher();
  for (const c of chunkHashes) h.add(c);
  return h.digest();
}

/** The content hash of the empty file (no chunks). */
export const EMPTY_CONTENT_HASH = contentHashOf([]);
