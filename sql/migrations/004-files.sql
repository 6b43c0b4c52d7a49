-- 004 files: the chunk index of file datasets and blobs.
--
-- Files are split into content-defined chunks (src/chunking), chunks are appended to
-- pack objects in the object store (src/packs), and PostgreSQL keeps the index:
--
--   dv_files.packs          pack id (SHA-256 of its footer) → object key, size
--   dv_files.chunks         chunk SHA-256 → (pack, offset, length)
--   dv_files.contents       file content hash (SHA-256 of the file) → size, chunk count
--   dv_files.content_chunks content hash, seq → chunk hash (the ordered chunk list)
--
-- A file dataset's version is a set of rows (path, size, content_hash, mode,
-- link_target) made by the row engine (dv.stage + COPY + dv.commit), so log, diff,
-- branches and merge serve files unchanged.
--
-- Write order of an ingest (src/files/ingest.ts), which is what makes it atomic and
-- resumable: a pack is recorded in dv_files.session_packs (state 'uploading') before
-- its upload; once uploaded, its packs row and chunk rows are inserted in one
-- transaction (state 'registered'); the contents and the version come last, in one
-- transaction, and foreign keys make "a committed version points to a missing chunk"
-- impossible. A pack left 'uploading' by a killed ingest is registered from its own
-- footer by the next ingest if it reached the store, or is a candidate for garbage
-- collection.

CREATE SCHEMA IF NOT EXISTS dv_files;
GRANT USAGE ON SCHEMA dv_files TO pgdv_reader;

CREATE TABLE dv_files.packs (
  id             text PRIMARY KEY,
  object_key     text NOT NULL,
  size           bigint NOT NULL CHECK (size > 0),
  chunk_count    integer NOT NULL,
  chunk_bytes    bigint NOT NULL,
  registered_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dv_files.packs IS 'Pack objects known to be complete in the object store; a chunk row may only point to a pack listed here.';

CREATE TABLE dv_files.chunks (
  hash     text PRIMARY KEY,
  pack_id  text NOT NULL REFERENCES dv_files.packs (id),
  "offset" bigint NOT NULL CHECK ("offset" >= 0),
  length   integer NOT NULL CHECK (length >= 0)
);
CREATE INDEX chunks_pack_idx ON dv_files.chunks (pack_id);
COMMENT ON TABLE dv_files.chunks IS 'Chunk index: SHA-256 (hex) of a chunk → the pack and byte range holding it.';

CREATE TABLE dv_files.contents (
  hash         text PRIMARY KEY,
  size         bigint NOT NULL CHECK (size >= 0),
  chunk_count  integer NOT NULL CHECK (chunk_count >= 0),
  created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dv_files.contents IS 'File contents by SHA-256 of the whole file: size and number of chunks.';

CREATE TABLE dv_files.content_chunks (
  content_hash  text NOT NULL REFERENCES dv_files.contents (hash),
  seq           integer NOT NULL CHECK (seq >= 0),
  chunk_hash    text NOT NULL REFERENCES dv_files.chunks (hash),
  PRIMARY KEY (content_hash, seq)
);
CREATE INDEX content_chunks_chunk_idx ON dv_files.content_chunks (chunk_hash);
COMMENT ON TABLE dv_files.content_chunks IS 'Each content''s chunks in file order.';

CREATE TABLE dv_files.dataset_contents (
  dataset_id    bigint NOT NULL REFERENCES dv.datasets (id) ON DELETE CASCADE,
  content_hash  text NOT NULL REFERENCES dv_files.contents (hash),
  PRIMARY KEY (dataset_id, content_hash)
);
CREATE INDEX dataset_contents_content_idx ON dv_files.dataset_contents (content_hash);
COMMENT ON TABLE dv_files.dataset_contents IS 'Contents referenced by any version of a files dataset: the roots for stats and garbage collection.';

CREATE TABLE dv_files.version_summary (
  version_id     bigint PRIMARY KEY REFERENCES dv.versions (id) ON DELETE CASCADE,
  dataset_id     bigint NOT NULL REFERENCES dv.datasets (id) ON DELETE CASCADE,
  file_count     bigint NOT NULL,
  logical_bytes  bigint NOT NULL
);
COMMENT ON TABLE dv_files.version_summary IS 'Files and bytes of each version made by pgdv add: what a checkout of it writes.';

CREATE TABLE dv_files.blobs (
  content_hash  text PRIMARY KEY REFERENCES dv_files.contents (hash),
  created_by    text NOT NULL DEFAULT session_user,
  created_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dv_files.blobs IS 'Contents stored with pgdv blob put (model artifacts): garbage-collection roots outside any dataset.';

CREATE TABLE dv_files.ingest_sessions (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset_id   bigint REFERENCES dv.datasets (id) ON DELETE SET NULL,
  purpose      text NOT NULL CHECK (purpose IN ('add', 'blob')),
  state        text NOT NULL DEFAULT 'running' CHECK (state IN ('running', 'committed', 'failed')),
  pid          integer,
  host         text,
  started_by   text NOT NULL DEFAULT session_user,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz
);
COMMENT ON TABLE dv_files.ingest_sessions IS 'One row per pgdv add or blob put; a session still running after its process died was killed.';

CREATE TABLE dv_files.session_packs (
  session_id  bigint NOT NULL REFERENCES dv_files.ingest_sessions (id) ON DELETE CASCADE,
  pack_id     text NOT NULL,
  object_key  text NOT NULL,
  size        bigint NOT NULL,
  state       text NOT NULL DEFAULT 'uploading' CHECK (state IN ('uploading', 'registered', 'absent')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (session_id, pack_id)
);
CREATE INDEX session_packs_state_idx ON dv_files.session_packs (state) WHERE state = 'uploading';
COMMENT ON TABLE dv_files.session_packs IS 'Every pack an ingest sealed, written before its upload: uploaded-but-unregistered packs stay findable for recovery and GC.';

GRANT SELECT ON ALL TABLES IN SCHEMA dv_files TO pgdv_reader;
GRANT INSERT, UPDATE ON ALL TABLES IN SCHEMA dv_files TO pgdv_writer;

-- ---------------------------------------------------------------------------
-- Functions
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv.missing_chunks(p_hashes text[])
RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- One round trip per batch of chunks: the object store is never asked per chunk.
  SELECT DISTINCT h FROM unnest(p_hashes) AS h
  WHERE NOT EXISTS (SELECT 1 FROM dv_files.chunks c WHERE c.hash = h)
$$;
COMMENT ON FUNCTION dv.missing_chunks(text[]) IS 'The chunk hashes (SHA-256 hex) of the batch that are not stored yet.
Example: SELECT * FROM dv.missing_chunks(ARRAY[''e3b0...'']);';

CREATE FUNCTION dv.file_chunks(p_content_hash text)
RETURNS TABLE (seq integer, chunk_hash text, pack_id text, object_key text, "offset" bigint, length integer)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT cc.seq, cc.chunk_hash, c.pack_id, p.object_key, c."offset", c.length
  FROM dv_files.content_chunks cc
  JOIN dv_files.chunks c ON c.hash = cc.chunk_hash
  JOIN dv_files.packs p ON p.id = c.pack_id
  WHERE cc.content_hash = p_content_hash
  ORDER BY cc.seq
$$;
COMMENT ON FUNCTION dv.file_chunks(text) IS 'The chunks of one file content in order, with the pack and byte range of each.
Example: SELECT * FROM dv.file_chunks(''<sha256 of the file>'');';

CREATE FUNCTION dv.storage_stats()
RETURNS TABLE (dataset text, versions bigint, files bigint, logical_bytes numeric, stored_bytes numeric,
               dedup_ratio numeric, chunks bigint, packs bigint)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- Per files dataset: logical bytes = what checking out every one of its versions
  -- writes; stored bytes = its distinct chunks (shared chunks count in each dataset
  -- that uses them). The last row (dataset NULL) is the whole store: every version
  -- and blob against every distinct chunk, and the pack objects holding them.
  WITH per_ds AS (
    SELECT d.id, d.name,
           (SELECT count(*) FROM dv_files.version_summary s WHERE s.dataset_id = d.id) AS versions,
           coalesce((SELECT s.file_count FROM dv.refs r JOIN dv_files.version_summary s ON s.version_id = r.version_id
                     WHERE r.dataset_id = d.id AND r.name = 'main'), 0) AS files,
           coalesce((SELECT sum(s.logical_bytes) FROM dv_files.version_summary s WHERE s.dataset_id = d.id), 0) AS logical_bytes
    FROM dv.datasets d WHERE d.kind = 'files'
  ), ds_chunks AS (
    SELECT dc.dataset_id, count(*) AS chunks, sum(c.length) AS bytes, count(DISTINCT c.pack_id) AS packs
    FROM (SELECT DISTINCT dc.dataset_id, cc.chunk_hash
          FROM dv_files.dataset_contents dc JOIN dv_files.content_chunks cc ON cc.content_hash = dc.content_hash) dc
    JOIN dv_files.chunks c ON c.hash = dc.chunk_hash
    GROUP BY dc.dataset_id
  ), overall AS (
    SELECT (SELECT coalesce(sum(s.logical_bytes), 0) FROM dv_files.version_summary s)
           + (SELECT coalesce(sum(ct.size), 0) FROM dv_files.blobs b JOIN dv_files.contents ct ON ct.hash = b.content_hash) AS logical_bytes,
           (SELECT coalesce(sum(length), 0) FROM dv_files.chunks) AS stored_bytes,
           (SELECT count(*) FROM dv_files.chunks) AS chunks,
           (SELECT count(*) FROM dv_files.packs) AS packs,
           (SELECT count(*) FROM dv_files.version_summary) AS versions,
           (SELECT count(*) FROM dv_files.blobs) AS blobs
  )
  SELECT * FROM (
    SELECT p.name, p.versions, p.files, p.logical_bytes::numeric, coalesce(k.bytes, 0)::numeric,
           CASE WHEN coalesce(k.bytes, 0) > 0 THEN round(p.logical_bytes::numeric / k.bytes, 3) END,
           coalesce(k.chunks, 0), coalesce(k.packs, 0)
    FROM per_ds p LEFT JOIN ds_chunks k ON k.dataset_id = p.id
    ORDER BY p.name
  ) x
  UNION ALL
  SELECT NULL, o.versions, o.blobs, o.logical_bytes::numeric, o.stored_bytes::numeric,
         CASE WHEN o.stored_bytes > 0 THEN round(o.logical_bytes::numeric / o.stored_bytes, 3) END,
         o.chunks, o.packs
  FROM overall o
$$;
COMMENT ON FUNCTION dv.storage_stats() IS 'Storage of file datasets: logical bytes (all versions as checked out), stored bytes (distinct chunks), dedup ratio, chunks, packs.
One row per files dataset, then one row with dataset NULL for the whole store (files = blob count there).
Example: SELECT * FROM dv.storage_stats();';

CREATE FUNCTION dv.unregistered_packs()
RETURNS TABLE (session_id bigint, pack_id text, object_key text, size bigint, state text, session_state text, created_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT sp.session_id, sp.pack_id, sp.object_key, sp.size, sp.state, s.state, sp.created_at
  FROM dv_files.session_packs sp
  JOIN dv_files.ingest_sessions s ON s.id = sp.session_id
  WHERE sp.state = 'uploading' AND NOT EXISTS (SELECT 1 FROM dv_files.packs p WHERE p.id = sp.pack_id)
  ORDER BY sp.created_at
$$;
COMMENT ON FUNCTION dv.unregistered_packs() IS 'Packs an ingest sealed but never registered (killed or failed mid-upload): candidates for recovery or garbage collection.';

REVOKE ALL ON SCHEMA dv_files FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA dv FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dv.missing_chunks(text[]), dv.file_chunks(text), dv.storage_stats(), dv.unregistered_packs() TO pgdv_reader;
