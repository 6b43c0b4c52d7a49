-- 003 rows: row versions stored as copy-on-write deltas, commits, reads, checkpoints,
-- diffs, merges, schema evolution and tag views.
--
-- Storage model (README "How row versions are stored and hashed" has the encoding; "Row versions from psql" the tour):
--   * every committed version except a dataset's empty root has a delta table
--     dv_rows."d<dataset id>_v<version id>" that INHERITS its parents' delta tables
--     (a merge inherits from both). It holds, relative to the FIRST parent, one entry per
--     key that changed: the new row, or a tombstone (_dv_hash NULL, _dv_count 0).
--     Unchanged rows are never copied. System columns:
--       _dv_key   bytea   SHA-256 of the key columns' encoding (keyless: the row hash)
--       _dv_hash  bytea   SHA-256 row hash; NULL = tombstone
--       _dv_count bigint  multiplicity (keyless datasets count duplicate rows; keyed: 1)
--     with a unique index on _dv_key, so point lookups and small diffs are index probes;
--   * reading version v walks its first-parent chain back to the nearest checkpoint
--     (dv_rows."c<dataset>_v<version>", a materialized full copy) or the root, and takes
--     per key the entry of the nearest version, dropping tombstones (one pass: the newer
--     deltas resolved together, the oldest table scanned once and anti-joined to them);
--   * a version's schema and tables are recorded in dv.version_columns and dv.version_tables.

CREATE SCHEMA IF NOT EXISTS dv_tags;
COMMENT ON SCHEMA dv_tags IS 'pgdv: one read-only view per tagged dataset version, named "<dataset>@<tag>": SELECT * FROM dv_tags."flights@v1.0".';
REVOKE ALL ON SCHEMA dv_tags FROM PUBLIC;
GRANT USAGE ON SCHEMA dv_tags TO pgdv_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA dv_tags GRANT SELECT ON TABLES TO pgdv_reader;

-- ---------------------------------------------------------------------------
-- Catalog
-- ---------------------------------------------------------------------------

CREATE TABLE dv.settings (
  name        text PRIMARY KEY,
  value       text NOT NULL,
  description text NOT NULL
);
COMMENT ON TABLE dv.settings IS 'pgdv tunables, one row each (admins may UPDATE them); e.g. checkpoint_depth.';
INSERT INTO dv.settings (name, value, description) VALUES
  ('checkpoint_depth', '20', 'A commit whose read chain would exceed this many delta tables is checkpointed (materialized) automatically.');

CREATE TABLE dv.version_tables (
  version_id        bigint PRIMARY KEY REFERENCES dv.versions (id) ON DELETE CASCADE,
  dataset_id        bigint NOT NULL REFERENCES dv.datasets (id) ON DELETE CASCADE,
  delta_table       name NOT NULL,
  checkpoint_table  name,
  chain_depth       integer NOT NULL,
  hash_sum          numeric NOT NULL DEFAULT 0,
  added             bigint NOT NULL DEFAULT 0,
  removed           bigint NOT NULL DEFAULT 0,
  modified          bigint NOT NULL DEFAULT 0
);
CREATE INDEX version_tables_dataset_idx ON dv.version_tables (dataset_id);
COMMENT ON TABLE dv.version_tables IS 'Where each version''s rows live: its delta table in dv_rows (changes against its first parent) and its checkpoint, if any.';
COMMENT ON COLUMN dv.version_tables.chain_depth IS 'Delta tables read to rebuild the version when it was committed (0 once checkpointed).';
COMMENT ON COLUMN dv.version_tables.hash_sum IS 'Sum of all row hashes (times multiplicity) as 256-bit unsigned integers mod 2^256; dv.versions.content_hash derives from it.';
COMMENT ON COLUMN dv.version_tables.added IS 'Rows added against the first parent (keyless: copies).';

CREATE TABLE dv.version_columns (
  version_id   bigint NOT NULL REFERENCES dv.versions (id) ON DELETE CASCADE,
  ordinal      integer NOT NULL,
  column_name  text NOT NULL,
  data_type    text NOT NULL,
  is_key       boolean NOT NULL DEFAULT false,
  PRIMARY KEY (version_id, ordinal),
  UNIQUE (version_id, column_name)
);
COMMENT ON TABLE dv.version_columns IS 'The schema of every version: its user columns in order, with type (format_type) and key flag.';

CREATE TABLE dv.tag_views (
  dataset_id  bigint NOT NULL REFERENCES dv.datasets (id) ON DELETE CASCADE,
  tag         text NOT NULL,
  version_id  bigint NOT NULL,
  view_name   name NOT NULL UNIQUE,
  PRIMARY KEY (dataset_id, tag)
);
COMMENT ON TABLE dv.tag_views IS 'The view in schema dv_tags that shows each tagged version: "<dataset>@<tag>", or "d<id>@@<md5>" when that is over 63 bytes.';

-- ---------------------------------------------------------------------------
-- Internal helpers: schema, canonical encoding, row hash, read chains
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv_internal.key_columns(p_dataset_id bigint)
RETURNS text[]
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN d.kind = 'files' THEN ARRAY['path'] ELSE d.key_columns END FROM dv.datasets d WHERE d.id = p_dataset_id
$$;
COMMENT ON FUNCTION dv_internal.key_columns(bigint) IS 'The key columns of a dataset (files: path; NULL = keyless).';

CREATE FUNCTION dv_internal.files_columns()
RETURNS TABLE (ordinal integer, column_name text, data_type text, is_key boolean)
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  VALUES (1, 'path', 'text', true), (2, 'size', 'bigint', false), (3, 'content_hash', 'text', false),
         (4, 'mode', 'integer', false), (5, 'link_target', 'text', false)
$$;
COMMENT ON FUNCTION dv_internal.files_columns() IS 'The fixed schema of a files dataset: (path text key, size bigint, content_hash text, mode integer, link_target text).';

CREATE FUNCTION dv_internal.canon_sql(p_expr text, p_type text)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The SQL expression giving the canonical text of one non-NULL value of type p_type
-- (a format_type() spelling). The README ("Canonical row encoding") documents each form; src/rows/hash.ts
-- produces the same text in Node. Callers run under DateStyle ISO, TimeZone UTC,
-- IntervalStyle postgres, extra_float_digits 1 (set on every function that hashes).
BEGIN
  IF p_type LIKE '%[]' THEN
    RETURN format('to_jsonb(%s)::text', p_expr);
  ELSIF p_type LIKE 'numeric%' THEN
    RETURN format('trim_scale(%s)::text', p_expr);
  ELSIF p_type = 'real' THEN
    RETURN format('CASE WHEN %1$s = ''NaN''::real THEN ''NaN'' ELSE encode(float4send(%1$s + 0::real), ''hex'') END', p_expr);
  ELSIF p_type = 'double precision' THEN
    RETURN format('CASE WHEN %1$s = ''NaN''::float8 THEN ''NaN'' ELSE encode(float8send(%1$s + 0::float8), ''hex'') END', p_expr);
  ELSIF p_type = 'bytea' THEN
    RETURN format('encode(%s, ''hex'')', p_expr);
  ELSIF p_type LIKE 'timestamp% with time zone' THEN
    RETURN format('(%s AT TIME ZONE ''UTC'')::text', p_expr);
  ELSIF p_type = 'json' THEN
    RETURN format('(%s)::jsonb::text', p_expr);
  ELSE
    -- integers, text, varchar, bool (true/false), date, timestamp, time, uuid, jsonb, interval, ...
    RETURN format('(%s)::text', p_expr);
  END IF;
END
$$;
COMMENT ON FUNCTION dv_internal.canon_sql(text, text) IS 'SQL expression for the canonical text of a value (row-hash encoding). Example: SELECT dv_internal.canon_sql(''x.price'', ''numeric'') -> trim_scale(x.price)::text';

CREATE FUNCTION dv_internal.hash_sql(p_alias text, p_names text[], p_types text[])
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Row encoding: for each column in order whose value is not NULL, the netstrings of
-- its name and of its canonical text ("<bytes>:<text>,"), concatenated; the hash is
-- SHA-256 of those UTF-8 bytes. NULL columns contribute nothing, so adding a column
-- (NULL in older rows) leaves every existing row hash unchanged.
DECLARE
  v_parts text[] := '{}';
  v_i int;
  v_col text;
  v_canon text;
BEGIN
  IF coalesce(cardinality(p_names), 0) = 0 THEN
    RETURN 'sha256(''''::bytea)';
  END IF;
  FOR v_i IN 1..cardinality(p_names) LOOP
    v_col := format('%s.%I', p_alias, p_names[v_i]);
    v_canon := dv_internal.canon_sql(v_col, p_types[v_i]);
    v_parts := v_parts || format('CASE WHEN %s IS NULL THEN '''' ELSE %L || octet_length(%s)::text || '':'' || %s || '','' END',
      v_col, format('%s:%s,', octet_length(p_names[v_i]), p_names[v_i]), v_canon, v_canon);
  END LOOP;
  RETURN format('sha256(convert_to(concat(%s), ''UTF8''))', array_to_string(v_parts, ', '));
END
$$;
COMMENT ON FUNCTION dv_internal.hash_sql(text, text[], text[]) IS 'SQL expression for the SHA-256 row hash (bytea) of the given columns of p_alias. Example: SELECT dv_internal.hash_sql(''s'', ARRAY[''id''], ARRAY[''bigint''])';

CREATE FUNCTION dv_internal.lanes_sql(p_hash text, p_count text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- Sum of hashes (times counts) as 256-bit unsigned integers, as an aggregate expression:
  -- eight unsigned 32-bit lanes, each summed as bigint (lane * count < 2^63; sum(int8)
  -- accumulates in 128 bits), combined once per aggregate as numeric.
  SELECT format('coalesce(%s, 0)', string_agg(format(
    'coalesce(sum((''x'' || encode(substr(%1$s, %3$s, 4), ''hex''))::bit(32)::bigint * %2$s), 0) * %4$s::numeric',
    p_hash, p_count, l * 4 + 1, (2::numeric ^ (32 * (7 - l)))::numeric(80, 0)), ' + '))
  FROM generate_series(0, 7) l
$$;
COMMENT ON FUNCTION dv_internal.lanes_sql(text, text) IS 'Aggregate SQL expression: the sum of hash values (bytea, 32 bytes) times counts as a numeric; content_hash builds on it.';

CREATE FUNCTION dv_internal.content_hash(p_sum numeric, p_rows bigint)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- content_hash = hex SHA-256 of '<row count>:<64 hex digits of the sum of row hashes mod 2^256>'
-- (order-independent, incremental); the empty version hashes the empty string.
DECLARE
  v_m constant numeric := 2::numeric ^ 256;
  v_s numeric := ((p_sum % v_m) + v_m) % v_m;
  v_hex text := '';
  v_chunk numeric;
  v_i int;
BEGIN
  IF p_rows = 0 THEN
    RETURN encode(sha256(''::bytea), 'hex');
  END IF;
  FOR v_i IN REVERSE 3..0 LOOP
    v_chunk := trunc(v_s / (2::numeric ^ (64 * v_i))) % (2::numeric ^ 64);
    IF v_chunk >= 2::numeric ^ 63 THEN
      v_chunk := v_chunk - 2::numeric ^ 64;
    END IF;
    v_hex := v_hex || lpad(to_hex(v_chunk::bigint), 16, '0');
  END LOOP;
  RETURN encode(sha256(convert_to(p_rows::text || ':' || v_hex, 'UTF8')), 'hex');
END
$$;
COMMENT ON FUNCTION dv_internal.content_hash(numeric, bigint) IS 'A version''s content hash from its row-hash sum and row count. Example: SELECT dv_internal.content_hash(0, 0)';

CREATE FUNCTION dv_internal.version_cols(p_version bigint)
RETURNS TABLE (ordinal integer, column_name text, data_type text, is_key boolean)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT c.ordinal, c.column_name, c.data_type, c.is_key FROM dv.version_columns c WHERE c.version_id = p_version ORDER BY c.ordinal
$$;
COMMENT ON FUNCTION dv_internal.version_cols(bigint) IS 'The user columns of a version, in order (none for a root version).';

CREATE FUNCTION dv_internal.chain(p_version bigint)
RETURNS TABLE (lvl integer, version_id bigint, rel name, is_checkpoint boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The tables to read for a version, newest first: its first-parent chain of delta
-- tables down to the nearest checkpoint (included) or the root (which has no table).
DECLARE
  v_id bigint := p_version;
  v_t dv.version_tables;
  v_l int := 0;
BEGIN
  LOOP
    SELECT * INTO v_t FROM dv.version_tables t WHERE t.version_id = v_id;
    EXIT WHEN NOT FOUND;
    IF v_t.checkpoint_table IS NOT NULL THEN
      lvl := v_l; version_id := v_id; rel := v_t.checkpoint_table; is_checkpoint := true;
      RETURN NEXT;
      EXIT;
    END IF;
    lvl := v_l; version_id := v_id; rel := v_t.delta_table; is_checkpoint := false;
    RETURN NEXT;
    SELECT v.parent_id INTO v_id FROM dv.versions v WHERE v.id = v_id;
    EXIT WHEN v_id IS NULL;
    v_l := v_l + 1;
  END LOOP;
END
$$;
COMMENT ON FUNCTION dv_internal.chain(bigint) IS 'The relations (newest first) whose entries make up a version: deltas back to the nearest checkpoint. Example: SELECT * FROM dv_internal.chain(42)';

CREATE FUNCTION dv_internal.read_sql(p_version bigint, p_restrict text DEFAULT NULL, p_cols_of bigint DEFAULT NULL, p_restrict_rows bigint DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- A SELECT of a version's live entries: its user columns (those of p_cols_of, default
-- the version's own; missing ones read NULL) plus _dv_key, _dv_hash, _dv_count. Per key
-- the entry of the nearest level wins (a newer entry or tombstone shadows older ones);
-- tombstones are dropped. One pass, linear in the chain: the newer levels (small deltas)
-- are resolved together (DISTINCT ON key, nearest level first) into dv_new; the oldest
-- level (the base delta or a checkpoint, usually holding almost every row) is read once
-- and anti-joined against dv_new's keys, so its rows are never sorted.
-- p_restrict names a relation with a _dv_key column (unique keys): only those keys are
-- read. p_restrict_rows estimates its size: few keys (or unknown) probe the oldest
-- level's index per key; more than ~3% of its rows read it in one sequential pass.
DECLARE
  v_cols_version bigint := coalesce(p_cols_of, p_version);
  v_names text[];
  v_types text[];
  v_level record;
  v_level_cols text[];
  v_sel text[];
  v_i int;
  v_parts text[] := '{}';
  v_n int := 0;
  v_base_rel name;
  v_base_sel text;
  v_out text;
  v_new text;
  v_base text;
  v_base_rows real;
  v_keys_of text;
  v_rr text;
BEGIN
  SELECT coalesce(array_agg(c.column_name ORDER BY c.ordinal), '{}'), coalesce(array_agg(c.data_type ORDER BY c.ordinal), '{}')
    INTO v_names, v_types FROM dv_internal.version_cols(v_cols_version) c;
  v_out := (SELECT string_agg(format('%I', n) || ', ', '') FROM unnest(v_names) n);
  v_out := coalesce(v_out, '') || '_dv_key, _dv_hash, _dv_count';
  v_keys_of := CASE WHEN p_restrict IS NULL THEN NULL ELSE format('(SELECT dv_rr._dv_key FROM %s dv_rr)', p_restrict) END;
  FOR v_level IN SELECT * FROM dv_internal.chain(p_version) ORDER BY lvl LOOP
    SELECT coalesce(array_agg(c.column_name), '{}') INTO v_level_cols FROM dv_internal.version_cols(v_level.version_id) c;
    v_sel := '{}';
    FOR v_i IN 1..coalesce(cardinality(v_names), 0) LOOP
      IF v_names[v_i] = ANY (v_level_cols) THEN
        v_sel := v_sel || format('x.%I', v_names[v_i]);
      ELSE
        v_sel := v_sel || format('NULL::%s AS %I', v_types[v_i], v_names[v_i]);
      END IF;
    END LOOP;
    v_sel := v_sel || ARRAY['x._dv_key', 'x._dv_hash', 'x._dv_count'];
    IF v_base_rel IS NOT NULL THEN
      -- the previous "oldest" level is a newer one after all
      v_parts := v_parts || v_base_sel;
    END IF;
    v_n := v_n + 1;
    v_base_rel := v_level.rel;
    v_base_sel := format('SELECT %s AS _dv_lvl, %s FROM ONLY dv_rows.%I x', v_level.lvl, array_to_string(v_sel, ', '), v_level.rel);
    v_base := array_to_string(v_sel, ', ');
  END LOOP;
  IF v_n = 0 THEN
    v_sel := '{}';
    FOR v_i IN 1..coalesce(cardinality(v_names), 0) LOOP
      v_sel := v_sel || format('NULL::%s AS %I', v_types[v_i], v_names[v_i]);
    END LOOP;
    v_sel := v_sel || ARRAY['NULL::bytea AS _dv_key', 'NULL::bytea AS _dv_hash', 'NULL::bigint AS _dv_count'];
    RETURN format('SELECT %s WHERE false', array_to_string(v_sel, ', '));
  END IF;

  -- The oldest level: v_base is its select list. How to reach its rows:
  IF p_restrict IS NULL THEN
    v_base := format('SELECT %s FROM ONLY dv_rows.%I x WHERE x._dv_hash IS NOT NULL', v_base, v_base_rel);
    IF v_n > 1 THEN
      v_base := v_base || ' AND NOT EXISTS (SELECT 1 FROM dv_new n WHERE n._dv_key = x._dv_key)';
    END IF;
  ELSE
    SELECT c.reltuples INTO v_base_rows FROM pg_class c WHERE c.oid = format('dv_rows.%I', v_base_rel)::regclass;
    -- The wanted keys the newer levels do not settle. EXCEPT (a hashed or sorted set
    -- operation) rather than NOT EXISTS: the CTEs' row estimates are guesses (200), and
    -- with them the planner picked a nested-loop anti join that went quadratic at 5M rows.
    v_rr := CASE WHEN v_n > 1 THEN format('(SELECT dv_rr._dv_key FROM %s dv_rr EXCEPT SELECT n._dv_key FROM dv_new n)', p_restrict)
                 ELSE p_restrict END;
    IF p_restrict_rows IS NOT NULL AND p_restrict_rows::real * 32 > coalesce(v_base_rows, 0) THEN
      -- Many keys: one sequential pass over the oldest level, hash-joined to the wanted keys
      -- (OFFSET 0 keeps the planner from turning it back into per-key probes).
      v_base := format('SELECT %s FROM (SELECT * FROM ONLY dv_rows.%I OFFSET 0) x JOIN %s dv_rr ON dv_rr._dv_key = x._dv_key WHERE x._dv_hash IS NOT NULL',
        v_base, v_base_rel, v_rr);
    ELSE
      -- Few keys: one index probe per wanted key (LATERAL + OFFSET 0 force it).
      v_base := format('SELECT %s FROM %s dv_rr CROSS JOIN LATERAL (SELECT * FROM ONLY dv_rows.%I y WHERE y._dv_key = dv_rr._dv_key OFFSET 0) x WHERE x._dv_hash IS NOT NULL',
        v_base, v_rr, v_base_rel);
    END IF;
  END IF;
  IF v_n = 1 THEN
    RETURN v_base;
  END IF;
  -- Restricted: one semi-join of the newer levels' union with the wanted keys (the
  -- planner picks a hash of the keys or index probes into each level).
  IF v_n = 2 THEN
    v_new := format('SELECT %s FROM (%s) x%s', v_out, v_parts[1],  -- one delta: keys are unique already
      CASE WHEN p_restrict IS NULL THEN '' ELSE ' WHERE x._dv_key IN ' || v_keys_of END);
  ELSE
    v_new := format('SELECT DISTINCT ON (x._dv_key) %s FROM (%s) x%s ORDER BY x._dv_key, x._dv_lvl', v_out, array_to_string(v_parts, ' UNION ALL '),
      CASE WHEN p_restrict IS NULL THEN '' ELSE ' WHERE x._dv_key IN ' || v_keys_of END);
  END IF;
  RETURN format('SELECT * FROM (WITH dv_new AS MATERIALIZED (%s) SELECT %s FROM dv_new WHERE _dv_hash IS NOT NULL UNION ALL %s) dv_r',
    v_new, v_out, v_base);
END
$$;
COMMENT ON FUNCTION dv_internal.read_sql(bigint, text, bigint, bigint) IS 'SQL reading a version''s live entries (user columns + _dv_key, _dv_hash, _dv_count), optionally only keys in a relation (of about p_restrict_rows keys). Example: SELECT dv_internal.read_sql(42)';

CREATE FUNCTION dv_internal.rows_sql(p_version bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_ds bigint;
  v_cols text;
  v_keyless boolean;
BEGIN
  SELECT v.dataset_id INTO v_ds FROM dv.versions v WHERE v.id = p_version;
  v_keyless := dv_internal.key_columns(v_ds) IS NULL;
  SELECT string_agg(format('r.%I', c.column_name), ', ' ORDER BY c.ordinal) INTO v_cols FROM dv_internal.version_cols(p_version) c;
  IF v_cols IS NULL THEN
    -- A root version: no rows; a files dataset still has its fixed columns.
    IF (SELECT d.kind FROM dv.datasets d WHERE d.id = v_ds) = 'files' THEN
      RETURN (SELECT format('SELECT %s WHERE false', string_agg(format('NULL::%s AS %I', f.data_type, f.column_name), ', ' ORDER BY f.ordinal))
              FROM dv_internal.files_columns() f);
    END IF;
    RETURN 'SELECT WHERE false';
  END IF;
  IF v_keyless THEN
    -- Keyless entries carry a multiplicity: duplicate rows come back as often as committed.
    RETURN format('SELECT %s FROM (%s) r CROSS JOIN LATERAL generate_series(1, r._dv_count) dup', v_cols, dv_internal.read_sql(p_version));
  END IF;
  RETURN format('SELECT %s FROM (%s) r', v_cols, dv_internal.read_sql(p_version));
END
$$;
COMMENT ON FUNCTION dv_internal.rows_sql(bigint) IS 'dv.rows_sql for a version id.';

CREATE FUNCTION dv_internal.first_parent_chain(p_version bigint)
RETURNS TABLE (version_id bigint, pos integer)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE c(id, pos) AS (
    SELECT p_version, 0
    UNION ALL
    SELECT v.parent_id, c.pos + 1 FROM c JOIN dv.versions v ON v.id = c.id WHERE v.parent_id IS NOT NULL
  )
  SELECT id, pos FROM c
$$;
COMMENT ON FUNCTION dv_internal.first_parent_chain(bigint) IS 'A version and its first-parent ancestors with their distance.';

CREATE FUNCTION dv_internal.candidates_sql(p_a bigint, p_b bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Keys that may differ between versions a and b: every key in the delta tables on the
-- first-parent chains of a and b above the newest version both chains share. Each
-- delta is relative to its first parent, so any key outside these deltas has the same
-- entry in a and b as in that shared version. Cost follows the size of the change.
DECLARE
  v_parts text[];
BEGIN
  WITH ca AS (SELECT * FROM dv_internal.first_parent_chain(p_a)),
       cb AS (SELECT * FROM dv_internal.first_parent_chain(p_b)),
       meet AS (SELECT min(ca.pos) AS pa, min(cb.pos) AS pb FROM ca JOIN cb USING (version_id)),
       vs AS (SELECT ca.version_id FROM ca, meet WHERE ca.pos < coalesce(meet.pa, 2147483647)
              UNION SELECT cb.version_id FROM cb, meet WHERE cb.pos < coalesce(meet.pb, 2147483647))
  SELECT array_agg(format('SELECT _dv_key FROM ONLY dv_rows.%I', t.delta_table) ORDER BY t.version_id)
    INTO v_parts
  FROM vs JOIN dv.version_tables t ON t.version_id = vs.version_id;
  IF v_parts IS NULL THEN
    RETURN 'SELECT NULL::bytea AS _dv_key WHERE false';
  END IF;
  RETURN format('SELECT DISTINCT _dv_key FROM (%s) u', array_to_string(v_parts, ' UNION ALL '));
END
$$;
COMMENT ON FUNCTION dv_internal.candidates_sql(bigint, bigint) IS 'SQL listing the keys that can differ between two versions, from the deltas on their first-parent paths. Example: SELECT dv_internal.candidates_sql(41, 42)';

CREATE FUNCTION dv_internal.stage_registry()
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  -- Session-local: which staging tables dv.stage made, and the branch heads it saw.
  CREATE TEMP TABLE IF NOT EXISTS dv_staging_registry (relid oid PRIMARY KEY, dataset_id bigint NOT NULL, heads jsonb NOT NULL);
END
$$;
COMMENT ON FUNCTION dv_internal.stage_registry() IS 'Creates the session''s registry of staging tables (pg_temp.dv_staging_registry) if missing.';

-- ---------------------------------------------------------------------------
-- Schema of a dataset
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv.dataset_columns(p_dataset text, p_ref text DEFAULT 'main')
RETURNS TABLE (ordinal integer, column_name text, data_type text, is_key boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_ds bigint := dv_internal.dataset_id(p_dataset);
  v_version bigint := dv.resolve_ref(p_dataset, p_ref);
BEGIN
  IF EXISTS (SELECT 1 FROM dv.version_columns c WHERE c.version_id = v_version) THEN
    RETURN QUERY SELECT * FROM dv_internal.version_cols(v_version);
  ELSIF (SELECT d.kind FROM dv.datasets d WHERE d.id = v_ds) = 'files' THEN
    RETURN QUERY SELECT * FROM dv_internal.files_columns();
  END IF;
END
$$;
COMMENT ON FUNCTION dv.dataset_columns(text, text) IS 'The user columns of a dataset version in order, with type and key flag (none before the first commit; files datasets: their fixed schema).
Example: SELECT * FROM dv.dataset_columns(''flights'', ''main'');';

-- ---------------------------------------------------------------------------
-- Staging and commit
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv.stage(p_dataset text, p_columns text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- SECURITY INVOKER on purpose: the TEMP table belongs to the caller, who fills it with COPY.
-- p_columns is a column definition list; it is parsed by creating a probe table, so it
-- can only define columns (a ";" is refused).
DECLARE
  v_ds bigint := dv_internal.dataset_id(p_dataset);
  v_kind text;
  v_keys text[];
  v_head bigint := dv.resolve_ref(p_dataset, 'main');
  v_defs text[] := '{}';
  v_names text[] := '{}';
  v_new record;
  v_existing text;
  v_name text;
  v_n int;
BEGIN
  SELECT d.kind INTO v_kind FROM dv.datasets d WHERE d.id = v_ds;
  v_keys := dv_internal.key_columns(v_ds);
  FOR v_new IN SELECT c.column_name, c.data_type FROM dv.dataset_columns(p_dataset, 'main') c ORDER BY c.ordinal LOOP
    v_defs := v_defs || format('%I %s', v_new.column_name, v_new.data_type);
    v_names := v_names || v_new.column_name;
  END LOOP;
  IF p_columns IS NOT NULL AND btrim(p_columns) <> '' THEN
    IF v_kind = 'files' THEN
      RAISE EXCEPTION 'dataset "%" holds files; its schema is fixed', p_dataset
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Call dv.stage without p_columns';
    END IF;
    IF position(';' IN p_columns) > 0 THEN
      RAISE EXCEPTION 'column list "%" for dataset "%" contains ";"', p_columns, p_dataset
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Give a column definition list such as ''id bigint, label text''';
    END IF;
    DROP TABLE IF EXISTS pg_temp.dv_stage_probe;
    BEGIN
      EXECUTE format('CREATE TEMP TABLE dv_stage_probe (%s)', p_columns);
    EXCEPTION WHEN syntax_error OR undefined_object OR duplicate_column OR invalid_table_definition THEN
      RAISE EXCEPTION 'column list "%" for dataset "%" is not valid: %', p_columns, p_dataset, SQLERRM
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Give a column definition list such as ''id bigint, label text''';
    END;
    FOR v_new IN
      SELECT a.attname::text AS column_name, format_type(a.atttypid, a.atttypmod) AS data_type
      FROM pg_attribute a WHERE a.attrelid = to_regclass('pg_temp.dv_stage_probe') AND a.attnum > 0 AND NOT a.attisdropped
      ORDER BY a.attnum
    LOOP
      SELECT c.data_type INTO v_existing FROM dv.dataset_columns(p_dataset, 'main') c WHERE c.column_name = v_new.column_name;
      IF v_existing IS NULL THEN
        v_defs := v_defs || format('%I %s', v_new.column_name, v_new.data_type);
        v_names := v_names || v_new.column_name;
      ELSIF v_existing <> v_new.data_type THEN
        RAISE EXCEPTION 'column "%" of dataset "%" is %, not %', v_new.column_name, p_dataset, v_existing, v_new.data_type
          USING ERRCODE = 'datatype_mismatch', HINT = 'Columns can be added, not retyped; use a new column name';
      END IF;
    END LOOP;
    DROP TABLE pg_temp.dv_stage_probe;
  END IF;
  IF cardinality(v_defs) = 0 THEN
    RAISE EXCEPTION 'dataset "%" has no columns yet', p_dataset
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass a column definition list: SELECT dv.stage(''name'', ''id bigint, label text'')';
  END IF;
  IF v_keys IS NOT NULL AND NOT (v_keys <@ v_names) THEN
    RAISE EXCEPTION 'dataset "%" is keyed by % but the columns are %', p_dataset, v_keys, v_names
      USING ERRCODE = 'undefined_column', HINT = 'Include every key column in the column list';
  END IF;

  PERFORM dv_internal.stage_registry();
  EXECUTE 'SELECT count(*) + 1 FROM pg_temp.dv_staging_registry' INTO v_n;
  LOOP
    v_name := format('dv_stage_%s_%s', v_ds, v_n);
    EXIT WHEN to_regclass(format('pg_temp.%I', v_name)) IS NULL;
    v_n := v_n + 1;
  END LOOP;
  EXECUTE format('CREATE TEMP TABLE %I (%s)', v_name, array_to_string(v_defs, ', '));
  EXECUTE 'INSERT INTO pg_temp.dv_staging_registry (relid, dataset_id, heads) VALUES ($1, $2, $3)'
    USING to_regclass(format('pg_temp.%I', v_name))::oid, v_ds,
          (SELECT coalesce(jsonb_object_agg(r.name, r.version_id), '{}') FROM dv.refs r WHERE r.dataset_id = v_ds AND r.kind = 'branch');
  RETURN format('pg_temp.%I', v_name);
END
$$;
COMMENT ON FUNCTION dv.stage(text, text) IS 'Creates a session TEMP staging table shaped like the dataset (head of main, plus columns added by p_columns) and returns its name for COPY ... FROM STDIN.
p_columns: a column definition list; required for the first commit of a table dataset, adds columns later. A files dataset needs none.
Example: SELECT dv.stage(''flights'', ''id bigint, origin text'');  -- then COPY pg_temp.dv_stage_1_1 FROM STDIN; SELECT * FROM dv.commit(''flights'', ''pg_temp.dv_stage_1_1'');';

CREATE FUNCTION dv_internal.make_version(
  p_ds bigint, p_parents bigint[], p_names text[], p_types text[], p_change text,
  p_message text, p_metadata jsonb, p_branch text, p_reason text
)
RETURNS TABLE (version_id bigint, added bigint, removed bigint, modified bigint, row_count bigint, content_hash text)
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- Turns a change relation (the new version's columns + _dv_key, _dv_hash, _dv_count,
-- _dv_old_hash, _dv_old_count, one row per changed key, relative to the first parent)
-- into a committed version: delta table inheriting the parents' tables, index,
-- schema, stats, content hash; moves p_branch (already locked by the caller).
DECLARE
  v_first bigint := p_parents[1];
  v_pv dv.versions;
  v_pt dv.version_tables;
  v_id bigint;
  v_table name;
  v_keys text[] := dv_internal.key_columns(p_ds);
  v_inherit text[] := '{}';
  v_parent_cols text[] := '{}';
  v_extra text[] := '{}';
  v_i int;
  v_added bigint;
  v_removed bigint;
  v_modified bigint;
  v_delta_rows bigint;
  v_sum numeric;
  v_rows bigint;
  v_hash text;
  v_depth int;
  v_limit int;
  v_cols text;
BEGIN
  SELECT * INTO v_pv FROM dv.versions v WHERE v.id = v_first;
  SELECT * INTO v_pt FROM dv.version_tables t WHERE t.version_id = v_first;

  INSERT INTO dv.versions (dataset_id, parent_id, depth, status, message, metadata)
  VALUES (p_ds, v_first, v_pv.depth + 1, 'pending', p_message, coalesce(p_metadata, '{}'::jsonb))
  RETURNING id INTO v_id;
  INSERT INTO dv.version_parents (version_id, parent_id, ordinal)
  SELECT v_id, p, o::smallint FROM unnest(p_parents) WITH ORDINALITY AS u(p, o);
  INSERT INTO dv.version_columns (version_id, ordinal, column_name, data_type, is_key)
  SELECT v_id, o::int, n, p_types[o], n = ANY (coalesce(v_keys, '{}')) FROM unnest(p_names) WITH ORDINALITY AS u(n, o);

  -- The delta table inherits every parent's delta table; columns a parent lacks are added here.
  SELECT coalesce(array_agg(format('dv_rows.%I', t.delta_table) ORDER BY u.o), '{}')
    INTO v_inherit
  FROM unnest(p_parents) WITH ORDINALITY AS u(p, o) JOIN dv.version_tables t ON t.version_id = u.p;
  SELECT coalesce(array_agg(DISTINCT c.column_name), '{}') INTO v_parent_cols
  FROM unnest(p_parents) p JOIN dv.version_tables t ON t.version_id = p JOIN dv.version_columns c ON c.version_id = p;
  FOR v_i IN 1..cardinality(p_names) LOOP
    IF NOT (p_names[v_i] = ANY (v_parent_cols)) THEN
      v_extra := v_extra || format('%I %s', p_names[v_i], p_types[v_i]);
    END IF;
  END LOOP;
  IF cardinality(v_inherit) = 0 THEN
    v_extra := v_extra || ARRAY['_dv_key bytea NOT NULL', '_dv_hash bytea', '_dv_count bigint NOT NULL DEFAULT 1'];
  END IF;
  v_table := format('d%s_v%s', p_ds, v_id);
  IF cardinality(v_inherit) = 0 THEN
    EXECUTE format('CREATE TABLE dv_rows.%I (%s)', v_table, array_to_string(v_extra, ', '));
  ELSE
    EXECUTE format('CREATE TABLE dv_rows.%I (%s) INHERITS (%s)', v_table, array_to_string(v_extra, ', '), array_to_string(v_inherit, ', '));
  END IF;
  INSERT INTO dv_internal.dataset_relations (dataset_id, schema_name, rel_name, rel_kind) VALUES (p_ds, 'dv_rows', v_table, 'table');
  EXECUTE format('COMMENT ON TABLE dv_rows.%I IS %L', v_table,
    format('pgdv: rows changed by version %s of dataset %s against its first parent (tombstones: _dv_hash NULL). Read versions with dv.rows().', v_id, p_ds));

  SELECT string_agg(format('%I', n), ', ') INTO v_cols FROM unnest(p_names) n;
  EXECUTE format('INSERT INTO dv_rows.%I (%s, _dv_key, _dv_hash, _dv_count) SELECT %s, _dv_key, _dv_hash, _dv_count FROM %s',
    v_table, v_cols, v_cols, p_change);
  GET DIAGNOSTICS v_delta_rows = ROW_COUNT;
  EXECUTE format('CREATE UNIQUE INDEX ON dv_rows.%I (_dv_key)', v_table);
  -- Small deltas are planned well from their page count; statistics pay off on big ones.
  IF v_delta_rows > 10000 THEN
    EXECUTE format('ANALYZE dv_rows.%I', v_table);
  END IF;

  IF v_keys IS NULL THEN
    EXECUTE format('SELECT coalesce(sum(greatest(_dv_count - _dv_old_count, 0)), 0), coalesce(sum(greatest(_dv_old_count - _dv_count, 0)), 0), 0::bigint,
                    coalesce(sum(_dv_count - _dv_old_count), 0), count(*), (%s) - (%s) FROM %s',
      dv_internal.lanes_sql('_dv_hash', '_dv_count'), dv_internal.lanes_sql('_dv_old_hash', '_dv_old_count'), p_change)
      INTO v_added, v_removed, v_modified, v_rows, v_delta_rows, v_sum;
  ELSE
    EXECUTE format('SELECT count(*) FILTER (WHERE _dv_old_hash IS NULL AND _dv_hash IS NOT NULL),
                           count(*) FILTER (WHERE _dv_old_hash IS NOT NULL AND _dv_hash IS NULL),
                           count(*) FILTER (WHERE _dv_old_hash IS NOT NULL AND _dv_hash IS NOT NULL),
                           coalesce(sum(_dv_count - _dv_old_count), 0), count(*), (%s) - (%s) FROM %s',
      dv_internal.lanes_sql('_dv_hash', '_dv_count'), dv_internal.lanes_sql('_dv_old_hash', '_dv_old_count'), p_change)
      INTO v_added, v_removed, v_modified, v_rows, v_delta_rows, v_sum;
  END IF;
  v_rows := v_pv.row_count + v_rows;
  v_sum := coalesce(v_pt.hash_sum, 0) + v_sum;
  v_sum := ((v_sum % (2::numeric ^ 256)) + 2::numeric ^ 256) % (2::numeric ^ 256);
  v_hash := dv_internal.content_hash(v_sum, v_rows);
  v_depth := coalesce(v_pt.chain_depth, 0) + 1;

  INSERT INTO dv.version_tables (version_id, dataset_id, delta_table, chain_depth, hash_sum, added, removed, modified)
  VALUES (v_id, p_ds, v_table, v_depth, v_sum, v_added, v_removed, v_modified);
  UPDATE dv.versions v SET status = 'committed', committed_at = clock_timestamp(), row_count = v_rows,
         byte_count = pg_total_relation_size(format('dv_rows.%I', v_table)::regclass), content_hash = v_hash
  WHERE v.id = v_id;

  PERFORM set_config('pgdv.reason', p_reason, true);
  UPDATE dv.refs r SET version_id = v_id WHERE r.dataset_id = p_ds AND r.name = p_branch;
  PERFORM set_config('pgdv.reason', '', true);

  SELECT s.value::int INTO v_limit FROM dv.settings s WHERE s.name = 'checkpoint_depth';
  IF v_depth > coalesce(v_limit, 20) THEN
    PERFORM dv_internal.checkpoint(v_id);
  END IF;

  version_id := v_id; added := v_added; removed := v_removed; modified := v_modified; row_count := v_rows; content_hash := v_hash;
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION dv_internal.make_version(bigint, bigint[], text[], text[], text, text, jsonb, text, text) IS 'Commits a change relation as a new version with its delta table, schema and content hash, and moves the branch.';

CREATE FUNCTION dv_internal.checkpoint(p_version bigint)
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- Materializes a version into dv_rows."c<dataset>_v<version>"; reads of it and of its
-- descendants stop there instead of walking further back.
DECLARE
  v_t dv.version_tables;
  v_table name;
  v_cols text;
BEGIN
  SELECT * INTO v_t FROM dv.version_tables t WHERE t.version_id = p_version FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;  -- a root version: nothing to materialize
  ELSIF v_t.checkpoint_table IS NOT NULL THEN
    RETURN v_t.checkpoint_table;
  END IF;
  v_table := format('c%s_v%s', v_t.dataset_id, p_version);
  SELECT string_agg(format('%I', c.column_name), ', ' ORDER BY c.ordinal) INTO v_cols FROM dv_internal.version_cols(p_version) c;
  EXECUTE format('CREATE TABLE dv_rows.%I AS SELECT %s, _dv_key, _dv_hash, _dv_count FROM (%s) r',
    v_table, v_cols, dv_internal.read_sql(p_version));
  EXECUTE format('CREATE UNIQUE INDEX ON dv_rows.%I (_dv_key)', v_table);
  EXECUTE format('ANALYZE dv_rows.%I', v_table);
  EXECUTE format('COMMENT ON TABLE dv_rows.%I IS %L', v_table,
    format('pgdv: checkpoint (full copy) of version %s of dataset %s. Read versions with dv.rows().', p_version, v_t.dataset_id));
  INSERT INTO dv_internal.dataset_relations (dataset_id, schema_name, rel_name, rel_kind) VALUES (v_t.dataset_id, 'dv_rows', v_table, 'table');
  UPDATE dv.version_tables t SET checkpoint_table = v_table, chain_depth = 0 WHERE t.version_id = p_version;
  RETURN v_table;
END
$$;
COMMENT ON FUNCTION dv_internal.checkpoint(bigint) IS 'Materializes a version (idempotent); returns the checkpoint table name in dv_rows.';

CREATE FUNCTION dv.commit(
  p_dataset text,
  p_staging regclass,
  p_mode text DEFAULT 'replace',
  p_branch text DEFAULT 'main',
  p_message text DEFAULT NULL,
  p_tag text DEFAULT NULL,
  p_force boolean DEFAULT false,
  p_metadata jsonb DEFAULT '{}'::jsonb
)
RETURNS TABLE (version_id bigint, parent_id bigint, branch text, created boolean, added bigint, removed bigint,
               modified bigint, row_count bigint, content_hash text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET "DateStyle" = 'ISO, MDY'
SET "TimeZone" = 'UTC'
SET "IntervalStyle" = 'postgres'
SET extra_float_digits = 1
AS $$
-- Contract: in one transaction, turns the staging table into a version on p_branch:
--   replace  the staging rows are the whole new contents
--   append   add rows (keyed: a key that exists already is an error; keyless: copies add up)
--   upsert   insert or replace rows by key (keyed datasets only)
--   delete   remove the keys (keyless: one copy per staged row) present in the staging table
-- Only changed keys are stored. Nothing changed and not p_force: no version, created = false.
-- Concurrency: the branch row is locked (FOR UPDATE), so commits to one branch are
-- serialized. If the branch moved after dv.stage created the staging table, this commit
-- was prepared against a version that is no longer the head: it fails with a conflict
-- naming both versions instead of silently replacing or rebasing the other writer's
-- change (a replace would drop it). Re-stage and commit again.
DECLARE
  v_ds bigint := dv_internal.dataset_id(p_dataset);
  v_kind text;
  v_keys text[];
  v_keyless boolean;
  v_head bigint;
  v_ref_kind text;
  v_staged_head bigint;
  v_heads jsonb;
  v_head_names text[];
  v_head_types text[];
  v_old_names text[];
  v_names text[];
  v_types text[];
  v_st record;
  v_sel text[] := '{}';
  v_i int;
  v_bad jsonb;
  v_n bigint;
  v_old text;
  v_csel text[];
  v_where text;
  v_from text;
  v_res record;
  v_registered boolean := false;
  v_keyobj text;
BEGIN
  SELECT d.kind INTO v_kind FROM dv.datasets d WHERE d.id = v_ds;
  v_keys := dv_internal.key_columns(v_ds);
  v_keyless := v_keys IS NULL;
  IF p_mode IS NULL OR p_mode NOT IN ('replace', 'append', 'upsert', 'delete') THEN
    RAISE EXCEPTION 'commit mode "%" is not known', p_mode
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use replace, append, upsert or delete';
  END IF;
  IF v_keyless AND p_mode = 'upsert' THEN
    RAISE EXCEPTION 'dataset "%" has no key, so mode upsert does not apply', p_dataset
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use append (rows are counted) or replace; or declare key columns when creating the dataset';
  END IF;
  IF p_staging IS NULL THEN
    RAISE EXCEPTION 'no staging table given for dataset "%"', p_dataset
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Create one with SELECT dv.stage(dataset) and fill it with COPY';
  END IF;
  IF NOT has_table_privilege(session_user, p_staging, 'SELECT') THEN
    RAISE EXCEPTION 'role % may not read staging table %', session_user, p_staging
      USING ERRCODE = 'insufficient_privilege', HINT = 'Commit from a table you can read, e.g. one made by dv.stage';
  END IF;

  -- Lock the branch: concurrent commits to it wait here, then see the new head.
  SELECT r.version_id, r.kind INTO v_head, v_ref_kind FROM dv.refs r WHERE r.dataset_id = v_ds AND r.name = p_branch FOR UPDATE;
  IF v_head IS NULL THEN
    RAISE EXCEPTION 'dataset "%" has no branch "%"', p_dataset, p_branch
      USING ERRCODE = 'undefined_object', HINT = format('Create it with SELECT * FROM dv.branch_create(%L, %L)', p_dataset, p_branch);
  ELSIF v_ref_kind <> 'branch' THEN
    RAISE EXCEPTION '"%" of dataset "%" is a tag; commits go to branches', p_branch, p_dataset
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Commit to a branch, e.g. main';
  END IF;
  IF p_tag IS NOT NULL THEN
    PERFORM dv_internal.check_ref_name('tag', p_tag);
    IF EXISTS (SELECT 1 FROM dv.refs r WHERE r.dataset_id = v_ds AND r.name = p_tag) THEN
      RAISE EXCEPTION 'dataset "%" already has a ref named "%"', p_dataset, p_tag
        USING ERRCODE = 'duplicate_object', HINT = 'Tags never move: choose another tag name';
    END IF;
  END IF;

  IF to_regclass('pg_temp.dv_staging_registry') IS NOT NULL THEN
    EXECUTE 'SELECT heads FROM pg_temp.dv_staging_registry WHERE relid = $1 AND dataset_id = $2' INTO v_heads USING p_staging::oid, v_ds;
    v_registered := v_heads IS NOT NULL;
    v_staged_head := (v_heads ->> p_branch)::bigint;
    IF v_staged_head IS NOT NULL AND v_staged_head <> v_head THEN
      RAISE EXCEPTION 'branch "%" of dataset "%" moved from version % to version % after this staging table was created',
        p_branch, p_dataset, v_staged_head, v_head
        USING ERRCODE = 'serialization_failure',
              HINT = format('Another commit won; see SELECT * FROM dv.diff(%L, %L, %L), then stage and commit again', p_dataset, v_staged_head::text, v_head::text);
    END IF;
  END IF;

  -- The new schema: the head's columns, then staging columns it lacks (schema evolution).
  SELECT coalesce(array_agg(c.column_name ORDER BY c.ordinal), '{}'), coalesce(array_agg(c.data_type ORDER BY c.ordinal), '{}')
    INTO v_head_names, v_head_types FROM dv_internal.version_cols(v_head) c;
  v_old_names := v_head_names;
  IF cardinality(v_head_names) = 0 AND v_kind = 'files' THEN
    SELECT array_agg(c.column_name ORDER BY c.ordinal), array_agg(c.data_type ORDER BY c.ordinal)
      INTO v_head_names, v_head_types FROM dv_internal.files_columns() c;
  END IF;
  v_names := v_head_names;
  v_types := v_head_types;
  FOR v_st IN
    SELECT a.attname::text AS column_name, format_type(a.atttypid, a.atttypmod) AS data_type
    FROM pg_attribute a WHERE a.attrelid = p_staging AND a.attnum > 0 AND NOT a.attisdropped AND a.attname::text NOT LIKE '\_dv\_%'
    ORDER BY a.attnum
  LOOP
    IF NOT (v_st.column_name = ANY (v_names)) THEN
      IF v_kind = 'files' THEN
        RAISE EXCEPTION 'staging table % has column "%" which files dataset "%" does not have', p_staging, v_st.column_name, p_dataset
          USING ERRCODE = 'undefined_column', HINT = 'A files dataset has the columns path, size, content_hash, mode, link_target';
      END IF;
      v_names := v_names || v_st.column_name;
      v_types := v_types || v_st.data_type;
    END IF;
  END LOOP;
  IF cardinality(v_names) = 0 THEN
    RAISE EXCEPTION 'staging table % has no columns', p_staging
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Create it with SELECT dv.stage(dataset, column list)';
  END IF;
  IF NOT v_keyless THEN
    FOR v_i IN 1..cardinality(v_keys) LOOP
      IF NOT EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p_staging AND a.attname = v_keys[v_i] AND a.attnum > 0 AND NOT a.attisdropped) THEN
        RAISE EXCEPTION 'staging table % lacks key column "%" of dataset "%"', p_staging, v_keys[v_i], p_dataset
          USING ERRCODE = 'undefined_column', HINT = format('Every row needs the key columns %s', array_to_string(v_keys, ', '));
      END IF;
    END LOOP;
  END IF;

  -- e: the staged rows cast to the dataset's types, with key and row hashes.
  FOR v_i IN 1..cardinality(v_names) LOOP
    IF EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p_staging AND a.attname = v_names[v_i] AND a.attnum > 0 AND NOT a.attisdropped) THEN
      v_sel := v_sel || format('s.%I::%s AS %I', v_names[v_i], v_types[v_i], v_names[v_i]);
    ELSE
      v_sel := v_sel || format('NULL::%s AS %I', v_types[v_i], v_names[v_i]);
    END IF;
  END LOOP;
  DROP TABLE IF EXISTS pg_temp.dv_commit_e;
  DROP TABLE IF EXISTS pg_temp.dv_commit_c;
  -- A loader may fill _dv_hash (and, keyed, _dv_key) itself with the bytes src/rows
  -- computes, to hash in parallel with COPY; NULLs (and absent columns) are hashed here.
  v_sel := v_sel
    || CASE WHEN EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p_staging AND a.attname = '_dv_hash' AND a.atttypid = 'bytea'::regtype AND NOT a.attisdropped)
            THEN 's._dv_hash AS _dv_given_hash' ELSE 'NULL::bytea AS _dv_given_hash' END
    || CASE WHEN NOT v_keyless AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p_staging AND a.attname = '_dv_key' AND a.atttypid = 'bytea'::regtype AND NOT a.attisdropped)
            THEN 's._dv_key AS _dv_given_key' ELSE 'NULL::bytea AS _dv_given_key' END;
  EXECUTE format('CREATE TEMP TABLE dv_commit_e ON COMMIT DROP AS SELECT %s, coalesce(x._dv_given_key, %s) AS _dv_key, coalesce(x._dv_given_hash, %s) AS _dv_hash, 1::bigint AS _dv_count
                  FROM (SELECT %s FROM %s s) x',
    (SELECT string_agg(format('x.%I', n), ', ') FROM unnest(v_names) n),
    CASE WHEN v_keyless THEN 'NULL::bytea' ELSE dv_internal.hash_sql('x', v_keys, (SELECT array_agg(v_types[array_position(v_names, k)]) FROM unnest(v_keys) k)) END,
    dv_internal.hash_sql('x', v_names, v_types), array_to_string(v_sel, ', '), p_staging);

  IF v_keyless THEN
    -- Identity = row hash; duplicates become one entry with a count.
    ALTER TABLE pg_temp.dv_commit_e RENAME TO dv_commit_e0;
    EXECUTE format('CREATE TEMP TABLE dv_commit_e ON COMMIT DROP AS
                    SELECT DISTINCT ON (_dv_hash) %s, _dv_hash AS _dv_key, _dv_hash, count(*) OVER (PARTITION BY _dv_hash) AS _dv_count
                    FROM pg_temp.dv_commit_e0', (SELECT string_agg(format('%I', n), ', ') FROM unnest(v_names) n));
    DROP TABLE pg_temp.dv_commit_e0;
  ELSE
    v_keyobj := (SELECT format('jsonb_build_object(%s)', string_agg(format('%L, %I', k, k), ', ')) FROM unnest(v_keys) k);
    EXECUTE format('SELECT count(*), min(%s::text)::jsonb FROM pg_temp.dv_commit_e WHERE %s',
      v_keyobj, (SELECT string_agg(format('%I IS NULL', k), ' OR ') FROM unnest(v_keys) k)) INTO v_n, v_bad;
    IF v_n > 0 THEN
      RAISE EXCEPTION '% staged row(s) for dataset "%" have a NULL key column, e.g. %', v_n, p_dataset, v_bad
        USING ERRCODE = 'not_null_violation', HINT = format('Key columns %s must be set in every row', array_to_string(v_keys, ', '));
    END IF;
    -- Group by the key hash alone; build the readable key only for the reported duplicate.
    EXECUTE format('SELECT d.n, (SELECT %s FROM pg_temp.dv_commit_e e WHERE e._dv_key = d._dv_key LIMIT 1)
                    FROM (SELECT _dv_key, count(*) OVER () AS n FROM pg_temp.dv_commit_e GROUP BY _dv_key HAVING count(*) > 1 LIMIT 1) d',
      v_keyobj) INTO v_n, v_bad;
    IF v_bad IS NOT NULL THEN
      RAISE EXCEPTION 'staged rows for dataset "%" repeat key % (% duplicated key(s))', p_dataset, v_bad, v_n
        USING ERRCODE = 'unique_violation', HINT = 'Each key may appear once per commit; remove the duplicates';
    END IF;
  END IF;
  -- No index on e: reads restricted to its keys drive index probes into the (indexed) delta tables.
  SELECT count(*) INTO v_n FROM pg_temp.dv_commit_e;
  IF v_n > 10000 THEN
    ANALYZE pg_temp.dv_commit_e;
  END IF;

  -- c: one row per key whose entry changes, with its old hash and count.
  v_csel := '{}';
  FOR v_i IN 1..cardinality(v_names) LOOP
    IF NOT v_keyless AND v_names[v_i] = ANY (v_keys) AND v_names[v_i] = ANY (v_old_names) THEN
      v_csel := v_csel || format('coalesce(e.%1$I, o.%1$I) AS %1$I', v_names[v_i]);
    ELSIF NOT v_keyless AND v_names[v_i] = ANY (v_keys) THEN
      v_csel := v_csel || format('e.%I', v_names[v_i]);
    ELSIF p_mode = 'delete' AND NOT v_keyless THEN
      v_csel := v_csel || format('NULL::%s AS %I', v_types[v_i], v_names[v_i]);
    ELSE
      v_csel := v_csel || format('e.%I', v_names[v_i]);
    END IF;
  END LOOP;
  IF p_mode = 'replace' THEN
    v_old := dv_internal.read_sql(v_head, NULL, NULL);
    v_from := format('pg_temp.dv_commit_e e FULL JOIN (%s) o ON o._dv_key = e._dv_key', v_old);
    v_where := 'o._dv_key IS NULL OR e._dv_key IS NULL OR e._dv_hash IS DISTINCT FROM o._dv_hash OR e._dv_count <> o._dv_count';
    v_csel := v_csel || ARRAY['coalesce(e._dv_key, o._dv_key) AS _dv_key', 'e._dv_hash AS _dv_hash', 'coalesce(e._dv_count, 0) AS _dv_count'];
  ELSE
    SELECT count(*) INTO v_n FROM pg_temp.dv_commit_e;
    v_old := dv_internal.read_sql(v_head, 'pg_temp.dv_commit_e', NULL, v_n);
    IF p_mode = 'append' AND NOT v_keyless AND cardinality(v_old_names) > 0 THEN
      EXECUTE format('SELECT count(*), min(%s::text)::jsonb FROM (%s) o', v_keyobj, v_old) INTO v_n, v_bad;
      IF v_n > 0 THEN
        RAISE EXCEPTION '% staged key(s) already exist in branch "%" of dataset "%", e.g. %', v_n, p_branch, p_dataset, v_bad
          USING ERRCODE = 'unique_violation', HINT = 'Use mode upsert to replace existing rows';
      END IF;
    END IF;
    IF p_mode = 'append' THEN
      v_from := format('pg_temp.dv_commit_e e LEFT JOIN (%s) o ON o._dv_key = e._dv_key', v_old);
      v_where := 'true';
      v_csel := v_csel || ARRAY['e._dv_key', 'e._dv_hash', 'e._dv_count + coalesce(o._dv_count, 0) AS _dv_count'];
    ELSIF p_mode = 'upsert' THEN
      v_from := format('pg_temp.dv_commit_e e LEFT JOIN (%s) o ON o._dv_key = e._dv_key', v_old);
      v_where := 'o._dv_key IS NULL OR o._dv_hash IS DISTINCT FROM e._dv_hash';
      v_csel := v_csel || ARRAY['e._dv_key', 'e._dv_hash', 'e._dv_count'];
    ELSIF v_keyless THEN  -- delete, keyless: remove as many copies as staged
      v_from := format('pg_temp.dv_commit_e e JOIN (%s) o ON o._dv_key = e._dv_key', v_old);
      v_where := 'true';
      v_csel := v_csel || ARRAY['e._dv_key', 'CASE WHEN o._dv_count > e._dv_count THEN e._dv_hash END AS _dv_hash',
                                'greatest(o._dv_count - e._dv_count, 0) AS _dv_count'];
    ELSE  -- delete, keyed: tombstones for the keys that exist
      v_from := format('pg_temp.dv_commit_e e JOIN (%s) o ON o._dv_key = e._dv_key', v_old);
      v_where := 'true';
      v_csel := v_csel || ARRAY['e._dv_key', 'NULL::bytea AS _dv_hash', '0::bigint AS _dv_count'];
    END IF;
  END IF;
  v_csel := v_csel || ARRAY['o._dv_hash AS _dv_old_hash', 'coalesce(o._dv_count, 0) AS _dv_old_count'];
  IF cardinality(v_old_names) = 0 AND p_mode <> 'delete' THEN
    -- First commit on an empty root: every staged entry is new; reuse e instead of copying it.
    ALTER TABLE pg_temp.dv_commit_e RENAME TO dv_commit_c;
    ALTER TABLE pg_temp.dv_commit_c ADD COLUMN _dv_old_hash bytea, ADD COLUMN _dv_old_count bigint NOT NULL DEFAULT 0;
  ELSE
    EXECUTE format('CREATE TEMP TABLE dv_commit_c ON COMMIT DROP AS SELECT %s FROM %s WHERE %s',
      array_to_string(v_csel, ', '), v_from, v_where);
    -- The keyless append/delete joins above also emit keys whose count did not change.
    DELETE FROM pg_temp.dv_commit_c c WHERE c._dv_count = c._dv_old_count AND c._dv_hash IS NOT DISTINCT FROM c._dv_old_hash;
  END IF;
  SELECT count(*) INTO v_n FROM pg_temp.dv_commit_c;

  IF v_n = 0 AND NOT coalesce(p_force, false) AND v_names = v_head_names THEN
    IF p_tag IS NOT NULL THEN
      PERFORM dv.tag_create(p_dataset, p_tag, v_head::text);
    END IF;
    IF v_registered THEN
      EXECUTE 'DELETE FROM pg_temp.dv_staging_registry WHERE relid = $1' USING p_staging::oid;
      EXECUTE format('DROP TABLE %s', p_staging);
    END IF;
    RETURN QUERY SELECT v.id, v.parent_id, p_branch, false, 0::bigint, 0::bigint, 0::bigint, v.row_count, v.content_hash
      FROM dv.versions v WHERE v.id = v_head;
    RETURN;
  END IF;

  SELECT * INTO v_res FROM dv_internal.make_version(v_ds, ARRAY[v_head], v_names, v_types, 'pg_temp.dv_commit_c',
    p_message, p_metadata, p_branch, format('commit (%s)', p_mode));
  IF p_tag IS NOT NULL THEN
    PERFORM dv.tag_create(p_dataset, p_tag, v_res.version_id::text);
  END IF;
  DROP TABLE IF EXISTS pg_temp.dv_commit_e;
  DROP TABLE pg_temp.dv_commit_c;
  IF v_registered THEN
    EXECUTE 'DELETE FROM pg_temp.dv_staging_registry WHERE relid = $1' USING p_staging::oid;
    EXECUTE format('DROP TABLE %s', p_staging);
  END IF;
  RETURN QUERY SELECT v_res.version_id, v_head, p_branch, true, v_res.added, v_res.removed, v_res.modified, v_res.row_count, v_res.content_hash;
END
$$;
COMMENT ON FUNCTION dv.commit(text, regclass, text, text, text, text, boolean, jsonb) IS 'Commits a staging table as a new version of a branch, in one transaction; modes replace (default), append, upsert, delete.
Stores only changed rows and tombstones. Nothing changed: created = false and no version (unless p_force). A branch that moved since dv.stage raises a conflict (40001) naming both versions.
Example: SELECT * FROM dv.commit(''flights'', ''pg_temp.dv_stage_1_1'', p_mode => ''upsert'', p_message => ''fix labels'');';

-- ---------------------------------------------------------------------------
-- Reading
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv.rows_sql(p_dataset text, p_ref text DEFAULT 'main')
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN dv_internal.rows_sql(dv.resolve_ref(p_dataset, p_ref));
END
$$;
COMMENT ON FUNCTION dv.rows_sql(text, text) IS 'A SELECT of a version''s user columns in order (duplicates of keyless rows repeated), for COPY (...) TO STDOUT or a subquery.
Example: SELECT dv.rows_sql(''flights'', ''v1.0'');  -- then COPY (<that>) TO STDOUT WITH (FORMAT csv, HEADER)';

CREATE FUNCTION dv.rows(p_dataset text, p_ref text DEFAULT 'main')
RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- jsonb so that one signature serves every dataset from psql. For typed columns, run the
-- SQL of dv.rows_sql, query a tag view, or SELECT * FROM jsonb_populate_record(...).
BEGIN
  RETURN QUERY EXECUTE format('SELECT to_jsonb(q) FROM (%s) q', dv.rows_sql(p_dataset, p_ref));
END
$$;
COMMENT ON FUNCTION dv.rows(text, text) IS 'The rows of a dataset version, one jsonb object per row (keyless duplicates repeated).
Example: SELECT r->>''id'', r->>''label'' FROM dv.rows(''flights'', ''main~1'') r;';

CREATE FUNCTION dv.row(p_dataset text, p_ref text, p_key jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET "DateStyle" = 'ISO, MDY'
SET "TimeZone" = 'UTC'
SET "IntervalStyle" = 'postgres'
SET extra_float_digits = 1
AS $$
-- Point lookup by key: hashes the key and probes the unique index of each table on the
-- version's chain. Keyless datasets: p_key is the whole row.
DECLARE
  v_version bigint := dv.resolve_ref(p_dataset, p_ref);
  v_ds bigint := dv_internal.dataset_id(p_dataset);
  v_keys text[] := dv_internal.key_columns(v_ds);
  v_names text[];
  v_types text[];
  v_cols text;
  v_k text;
  v_hash bytea;
  v_out jsonb;
BEGIN
  IF p_key IS NULL OR jsonb_typeof(p_key) <> 'object' THEN
    RAISE EXCEPTION 'key for dataset "%" must be a jsonb object, got %', p_dataset, coalesce(p_key::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Example: ''{"id": 42}''::jsonb';
  END IF;
  SELECT array_agg(c.column_name ORDER BY c.ordinal), array_agg(c.data_type ORDER BY c.ordinal), string_agg(format('%I %s', c.column_name, c.data_type), ', ' ORDER BY c.ordinal)
    INTO v_names, v_types, v_cols
  FROM dv_internal.version_cols(v_version) c WHERE v_keys IS NULL OR c.column_name = ANY (v_keys);
  IF v_names IS NULL THEN
    RETURN NULL;
  END IF;
  IF v_keys IS NOT NULL THEN
    FOREACH v_k IN ARRAY v_keys LOOP
      IF NOT p_key ? v_k THEN
        RAISE EXCEPTION 'key % for dataset "%" lacks key column "%"', p_key, p_dataset, v_k
          USING ERRCODE = 'invalid_parameter_value', HINT = format('Give every key column: %s', array_to_string(v_keys, ', '));
      END IF;
    END LOOP;
  END IF;
  EXECUTE format('SELECT %s FROM jsonb_to_record($1) AS x(%s)', dv_internal.hash_sql('x', v_names, v_types), v_cols) INTO v_hash USING p_key;
  EXECUTE format('SELECT to_jsonb(r) - ''_dv_key'' - ''_dv_hash'' - ''_dv_count'' FROM (%s) r',
    dv_internal.read_sql(v_version, '(SELECT $1::bytea AS _dv_key)', NULL, 1))
    INTO v_out USING v_hash;
  RETURN v_out;
END
$$;
COMMENT ON FUNCTION dv.row(text, text, jsonb) IS 'Point lookup: the row with the given key in a version, as jsonb, or NULL (keyless: p_key is the whole row).
Example: SELECT dv.row(''flights'', ''main'', ''{"id": 42}'');';

CREATE FUNCTION dv.checkpoint(p_dataset text, p_ref text DEFAULT 'main')
RETURNS TABLE (version_id bigint, table_name text, created boolean)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_version bigint := dv.resolve_ref(p_dataset, p_ref);
  v_had name;
  v_table name;
BEGIN
  SELECT t.checkpoint_table INTO v_had FROM dv.version_tables t WHERE t.version_id = v_version;
  v_table := dv_internal.checkpoint(v_version);
  RETURN QUERY SELECT v_version, CASE WHEN v_table IS NULL THEN NULL ELSE format('dv_rows.%I', v_table) END, v_had IS NULL AND v_table IS NOT NULL;
END
$$;
COMMENT ON FUNCTION dv.checkpoint(text, text) IS 'Materializes a version into a full copy so reads of it and its descendants stop walking the delta chain (done automatically past dv.settings checkpoint_depth).
Example: SELECT * FROM dv.checkpoint(''flights'', ''main'');';

-- ---------------------------------------------------------------------------
-- Tag views
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv_internal.tag_view_name(p_dataset_id bigint, p_tag text)
RETURNS name
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- "@" is allowed in neither dataset nor tag names, so "<dataset>@<tag>" cannot collide;
  -- the long-name fallback uses "@@", which no short name contains.
  SELECT CASE WHEN octet_length(d.name || '@' || p_tag) <= 63 THEN d.name || '@' || p_tag
              ELSE format('d%s@@%s', p_dataset_id, left(md5(p_tag), 24)) END::name
  FROM dv.datasets d WHERE d.id = p_dataset_id
$$;
COMMENT ON FUNCTION dv_internal.tag_view_name(bigint, text) IS 'The dv_tags view name for a tag of a dataset.';

CREATE FUNCTION dv_internal.tag_views_trigger()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Keeps one view per tag in schema dv_tags: created with the tag, dropped with it.
DECLARE
  v_name name;
BEGIN
  IF TG_OP = 'INSERT' AND NEW.kind = 'tag' THEN
    IF NOT EXISTS (SELECT 1 FROM dv.version_columns c WHERE c.version_id = NEW.version_id) THEN
      RETURN NULL;  -- an empty root version has no columns to show
    END IF;
    v_name := dv_internal.tag_view_name(NEW.dataset_id, NEW.name);
    EXECUTE format('CREATE VIEW dv_tags.%I AS %s', v_name, dv_internal.rows_sql(NEW.version_id));
    EXECUTE format('COMMENT ON VIEW dv_tags.%I IS %L', v_name,
      format('pgdv: the rows of dataset %s at tag %s (version %s).', (SELECT d.name FROM dv.datasets d WHERE d.id = NEW.dataset_id), NEW.name, NEW.version_id));
    EXECUTE format('GRANT SELECT ON dv_tags.%I TO pgdv_reader', v_name);
    INSERT INTO dv.tag_views (dataset_id, tag, version_id, view_name) VALUES (NEW.dataset_id, NEW.name, NEW.version_id, v_name);
    INSERT INTO dv_internal.dataset_relations (dataset_id, schema_name, rel_name, rel_kind) VALUES (NEW.dataset_id, 'dv_tags', v_name, 'view');
  ELSIF TG_OP = 'DELETE' AND OLD.kind = 'tag' THEN
    SELECT t.view_name INTO v_name FROM dv.tag_views t WHERE t.dataset_id = OLD.dataset_id AND t.tag = OLD.name;
    IF v_name IS NOT NULL THEN
      EXECUTE format('DROP VIEW IF EXISTS dv_tags.%I', v_name);
      DELETE FROM dv.tag_views t WHERE t.dataset_id = OLD.dataset_id AND t.tag = OLD.name;
      DELETE FROM dv_internal.dataset_relations r WHERE r.schema_name = 'dv_tags' AND r.rel_name = v_name;
    END IF;
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION dv_internal.tag_views_trigger() IS 'Trigger on dv.refs: creates the dv_tags view of a new tag and drops it with the tag.';

CREATE TRIGGER tag_views AFTER INSERT OR DELETE ON dv.refs
  FOR EACH ROW EXECUTE FUNCTION dv_internal.tag_views_trigger();

-- ---------------------------------------------------------------------------
-- Diffs
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv_internal.levels_sql(p_versions bigint[], p_cols_of bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- SQL of the newest entry per key (tombstones included) among the delta tables of
-- p_versions (newest first), with the user columns of p_cols_of (NULL where a delta
-- lacks one) plus _dv_key, _dv_hash, _dv_count. Used by diffs for the deltas a side has
-- on top of the version both sides share.
DECLARE
  v_names text[];
  v_types text[];
  v_parts text[] := '{}';
  v_v record;
  v_level_cols text[];
  v_sel text[];
  v_i int;
  v_out text;
BEGIN
  SELECT coalesce(array_agg(c.column_name ORDER BY c.ordinal), '{}'), coalesce(array_agg(c.data_type ORDER BY c.ordinal), '{}')
    INTO v_names, v_types FROM dv_internal.version_cols(p_cols_of) c;
  FOR v_v IN SELECT u.o, t.version_id, t.delta_table FROM unnest(p_versions) WITH ORDINALITY AS u(v, o)
             JOIN dv.version_tables t ON t.version_id = u.v ORDER BY u.o LOOP
    SELECT coalesce(array_agg(c.column_name), '{}') INTO v_level_cols FROM dv_internal.version_cols(v_v.version_id) c;
    v_sel := '{}';
    FOR v_i IN 1..coalesce(cardinality(v_names), 0) LOOP
      IF v_names[v_i] = ANY (v_level_cols) THEN
        v_sel := v_sel || format('x.%I', v_names[v_i]);
      ELSE
        v_sel := v_sel || format('NULL::%s AS %I', v_types[v_i], v_names[v_i]);
      END IF;
    END LOOP;
    v_sel := v_sel || ARRAY['x._dv_key', 'x._dv_hash', 'x._dv_count'];
    v_parts := v_parts || format('SELECT %s AS _dv_lvl, %s FROM ONLY dv_rows.%I x', v_v.o, array_to_string(v_sel, ', '), v_v.delta_table);
  END LOOP;
  v_out := coalesce((SELECT string_agg(format('%I', n) || ', ', '') FROM unnest(v_names) n), '') || '_dv_key, _dv_hash, _dv_count';
  IF cardinality(v_parts) = 0 THEN
    RETURN format('SELECT %s WHERE false',
      coalesce((SELECT string_agg(format('NULL::%s AS %I', v_types[o], n) || ', ', '') FROM unnest(v_names) WITH ORDINALITY AS u(n, o)), '')
      || 'NULL::bytea AS _dv_key, NULL::bytea AS _dv_hash, NULL::bigint AS _dv_count');
  ELSIF cardinality(v_parts) = 1 THEN
    RETURN format('SELECT %s FROM (%s) x', v_out, v_parts[1]);
  END IF;
  RETURN format('SELECT DISTINCT ON (x._dv_key) %s FROM (%s) x ORDER BY x._dv_key, x._dv_lvl', v_out, array_to_string(v_parts, ' UNION ALL '));
END
$$;
COMMENT ON FUNCTION dv_internal.levels_sql(bigint[], bigint) IS 'SQL of the newest entry per key (tombstones included) among the delta tables of some versions, newest first. Example: SELECT dv_internal.levels_sql(ARRAY[43, 42], 43)';

CREATE FUNCTION dv_internal.diff_sql(p_a bigint, p_b bigint, p_values boolean)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Let m be the newest version on both first-parent chains. Each side's entries for the
-- keys that can differ are its own deltas above m (oa, nb: newest entry per key,
-- tombstones included; small, scanned once), and for the keys only the other side
-- changed, m's entry, read restricted to those keys (index probes when they are few,
-- one sequential pass over m's big base when they are many). The deltas below m are
-- never scanned for a side that changed every candidate itself. Keyless datasets: one
-- added/removed row per copy gained or lost.
DECLARE
  v_ds bigint := (SELECT v.dataset_id FROM dv.versions v WHERE v.id = p_a);
  v_keys text[] := dv_internal.key_columns(v_ds);
  v_sys constant text := ' - ''_dv_key'' - ''_dv_hash'' - ''_dv_count''';
  v_with text;
  v_keyn text;
  v_keyo text;
  v_m bigint;
  v_own_a bigint[];
  v_own_b bigint[];
  v_rows_a bigint;
  v_rows_b bigint;
  v_cols_a bigint := CASE WHEN EXISTS (SELECT 1 FROM dv.version_columns c WHERE c.version_id = p_a) THEN p_a ELSE p_b END;
  v_cols_b bigint := CASE WHEN EXISTS (SELECT 1 FROM dv.version_columns c WHERE c.version_id = p_b) THEN p_b ELSE p_a END;
BEGIN
  WITH ca AS (SELECT * FROM dv_internal.first_parent_chain(p_a)),
       cb AS (SELECT * FROM dv_internal.first_parent_chain(p_b))
  SELECT ca.version_id INTO v_m FROM ca JOIN cb USING (version_id) ORDER BY ca.pos LIMIT 1;
  SELECT coalesce(array_agg(c.version_id ORDER BY c.pos) FILTER (WHERE c.version_id <> v_m AND c.pos < coalesce((SELECT c2.pos FROM dv_internal.first_parent_chain(p_a) c2 WHERE c2.version_id = v_m), 2147483647)), '{}')
    INTO v_own_a FROM dv_internal.first_parent_chain(p_a) c;
  SELECT coalesce(array_agg(c.version_id ORDER BY c.pos) FILTER (WHERE c.version_id <> v_m AND c.pos < coalesce((SELECT c2.pos FROM dv_internal.first_parent_chain(p_b) c2 WHERE c2.version_id = v_m), 2147483647)), '{}')
    INTO v_own_b FROM dv_internal.first_parent_chain(p_b) c;
  -- How many keys each side's own deltas hold (an upper bound; index builds keep reltuples current).
  SELECT coalesce(sum(greatest(pc.reltuples, 0)), 0)::bigint INTO v_rows_a
  FROM dv.version_tables t JOIN pg_class pc ON pc.oid = format('dv_rows.%I', t.delta_table)::regclass WHERE t.version_id = ANY (v_own_a);
  SELECT coalesce(sum(greatest(pc.reltuples, 0)), 0)::bigint INTO v_rows_b
  FROM dv.version_tables t JOIN pg_class pc ON pc.oid = format('dv_rows.%I', t.delta_table)::regclass WHERE t.version_id = ANY (v_own_b);
  v_with := format('WITH oa AS MATERIALIZED (%s), nb AS MATERIALIZED (%s), ',
    dv_internal.levels_sql(v_own_a, v_cols_a), dv_internal.levels_sql(v_own_b, v_cols_b));
  -- ka / kb: the keys a side must look up in m (changed only by the other side).
  v_with := v_with || 'ka AS MATERIALIZED (SELECT k._dv_key FROM nb k WHERE NOT EXISTS (SELECT 1 FROM oa WHERE oa._dv_key = k._dv_key)), '
                   || 'kb AS MATERIALIZED (SELECT k._dv_key FROM oa k WHERE NOT EXISTS (SELECT 1 FROM nb WHERE nb._dv_key = k._dv_key)), ';
  v_with := v_with || format('o AS MATERIALIZED (%s), n AS MATERIALIZED (%s) ',
    CASE WHEN cardinality(v_own_b) = 0 THEN 'SELECT * FROM oa WHERE _dv_hash IS NOT NULL'
         ELSE format('SELECT * FROM oa WHERE _dv_hash IS NOT NULL UNION ALL %s',
           dv_internal.read_sql(v_m, 'ka', v_cols_a, v_rows_b)) END,
    CASE WHEN cardinality(v_own_a) = 0 THEN 'SELECT * FROM nb WHERE _dv_hash IS NOT NULL'
         ELSE format('SELECT * FROM nb WHERE _dv_hash IS NOT NULL UNION ALL %s',
           dv_internal.read_sql(v_m, 'kb', v_cols_b, v_rows_a)) END);
  IF v_keys IS NULL THEN
    RETURN v_with || format($f$
      SELECT CASE WHEN coalesce(n._dv_count, 0) > coalesce(o._dv_count, 0) THEN 'added' ELSE 'removed' END AS change,
             CASE WHEN n._dv_key IS NOT NULL THEN to_jsonb(n) %1$s ELSE to_jsonb(o) %1$s END AS key,
             CASE WHEN coalesce(n._dv_count, 0) > coalesce(o._dv_count, 0) THEN NULL ELSE encode(o._dv_hash, 'hex') END AS old_hash,
             CASE WHEN coalesce(n._dv_count, 0) > coalesce(o._dv_count, 0) THEN encode(n._dv_hash, 'hex') END AS new_hash,
             CASE WHEN %2$L AND coalesce(n._dv_count, 0) < coalesce(o._dv_count, 0) THEN to_jsonb(o) %1$s END AS old_values,
             CASE WHEN %2$L AND coalesce(n._dv_count, 0) > coalesce(o._dv_count, 0) THEN to_jsonb(n) %1$s END AS new_values,
             coalesce(n._dv_key, o._dv_key) AS _k
      FROM o FULL JOIN n ON n._dv_key = o._dv_key
      CROSS JOIN LATERAL generate_series(1, abs(coalesce(n._dv_count, 0) - coalesce(o._dv_count, 0))) dup
      WHERE coalesce(n._dv_count, 0) <> coalesce(o._dv_count, 0)$f$, v_sys, p_values);
  END IF;
  SELECT format('jsonb_build_object(%s)', string_agg(format('%L, n.%I', k, k), ', ')),
         format('jsonb_build_object(%s)', string_agg(format('%L, o.%I', k, k), ', '))
    INTO v_keyn, v_keyo FROM unnest(v_keys) k;
  RETURN v_with || format($f$
    SELECT CASE WHEN o._dv_key IS NULL THEN 'added' WHEN n._dv_key IS NULL THEN 'removed' ELSE 'modified' END AS change,
           CASE WHEN n._dv_key IS NOT NULL THEN %3$s ELSE %4$s END AS key,
           encode(o._dv_hash, 'hex') AS old_hash, encode(n._dv_hash, 'hex') AS new_hash,
           CASE WHEN %2$L AND o._dv_key IS NOT NULL THEN to_jsonb(o) %1$s END AS old_values,
           CASE WHEN %2$L AND n._dv_key IS NOT NULL THEN to_jsonb(n) %1$s END AS new_values,
           coalesce(n._dv_key, o._dv_key) AS _k
    FROM o FULL JOIN n ON n._dv_key = o._dv_key
    WHERE o._dv_hash IS DISTINCT FROM n._dv_hash$f$, v_sys, p_values, v_keyn, v_keyo);
END
$$;
COMMENT ON FUNCTION dv_internal.diff_sql(bigint, bigint, boolean) IS 'SQL of the row diff between two versions (columns change, key, old_hash, new_hash, old_values, new_values, _k).';

CREATE FUNCTION dv.diff(p_dataset text, p_from text, p_to text, p_values boolean DEFAULT false)
RETURNS TABLE (change text, key jsonb, old_hash text, new_hash text, old_values jsonb, new_values jsonb)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_a bigint := dv.resolve_ref(p_dataset, p_from);
  v_b bigint := dv.resolve_ref(p_dataset, p_to);
BEGIN
  IF v_a = v_b THEN
    RETURN;
  END IF;
  RETURN QUERY EXECUTE format('SELECT change, key, old_hash, new_hash, old_values, new_values FROM (%s) d ORDER BY _k, change',
    dv_internal.diff_sql(v_a, v_b, coalesce(p_values, false)));
END
$$;
COMMENT ON FUNCTION dv.diff(text, text, text, boolean) IS 'Row differences between two refs: added / removed / modified, the key, old and new row hash, and with p_values the old and new rows as jsonb.
Computed from the deltas on the paths between the versions (cost follows the change). Keyless datasets: one row per copy added or removed; key = the row.
Example: SELECT * FROM dv.diff(''flights'', ''v1.0'', ''main'', true);';

CREATE FUNCTION dv.diff_summary(p_dataset text, p_from text, p_to text)
RETURNS TABLE (added bigint, removed bigint, modified bigint)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_a bigint := dv.resolve_ref(p_dataset, p_from);
  v_b bigint := dv.resolve_ref(p_dataset, p_to);
BEGIN
  IF v_a = v_b THEN
    RETURN QUERY SELECT 0::bigint, 0::bigint, 0::bigint;
    RETURN;
  END IF;
  RETURN QUERY EXECUTE format($f$SELECT count(*) FILTER (WHERE change = 'added'), count(*) FILTER (WHERE change = 'removed'),
                                        count(*) FILTER (WHERE change = 'modified') FROM (%s) d$f$,
    dv_internal.diff_sql(v_a, v_b, false));
END
$$;
COMMENT ON FUNCTION dv.diff_summary(text, text, text) IS 'Counts of rows added, removed and modified between two refs (keyless: copies).
Example: SELECT * FROM dv.diff_summary(''flights'', ''main~1'', ''main'');';

CREATE FUNCTION dv.diff_schema(p_dataset text, p_from text, p_to text)
RETURNS TABLE (change text, column_name text, old_type text, new_type text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_a bigint := dv.resolve_ref(p_dataset, p_from);
  v_b bigint := dv.resolve_ref(p_dataset, p_to);
BEGIN
  RETURN QUERY
  SELECT CASE WHEN o.column_name IS NULL THEN 'added' WHEN n.column_name IS NULL THEN 'removed' ELSE 'retyped' END,
         coalesce(n.column_name, o.column_name), o.data_type, n.data_type
  FROM dv_internal.version_cols(v_a) o FULL JOIN dv_internal.version_cols(v_b) n ON n.column_name = o.column_name
  WHERE o.data_type IS DISTINCT FROM n.data_type
  ORDER BY coalesce(n.ordinal, o.ordinal);
END
$$;
COMMENT ON FUNCTION dv.diff_schema(text, text, text) IS 'Column changes between two refs: added (older versions read NULL for it), removed, retyped.
Example: SELECT * FROM dv.diff_schema(''flights'', ''v1.0'', ''main'');';

-- ---------------------------------------------------------------------------
-- Merge
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv_internal.merge_base(p_a bigint, p_b bigint)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- A parent always has a smaller id than its child, so the common ancestor with the
  -- greatest id is not an ancestor of another common ancestor: a lowest common ancestor.
  WITH RECURSIVE a(id) AS (
    SELECT p_a UNION
    SELECT coalesce(p.parent_id, v.parent_id) FROM a JOIN dv.versions v ON v.id = a.id
    LEFT JOIN dv.version_parents p ON p.version_id = v.id WHERE coalesce(p.parent_id, v.parent_id) IS NOT NULL
  ), b(id) AS (
    SELECT p_b UNION
    SELECT coalesce(p.parent_id, v.parent_id) FROM b JOIN dv.versions v ON v.id = b.id
    LEFT JOIN dv.version_parents p ON p.version_id = v.id WHERE coalesce(p.parent_id, v.parent_id) IS NOT NULL
  )
  SELECT max(a.id) FROM a JOIN b USING (id)
$$;
COMMENT ON FUNCTION dv_internal.merge_base(bigint, bigint) IS 'A lowest common ancestor of two version ids (through all parents).';

CREATE FUNCTION dv.merge_base(p_dataset text, p_a text, p_b text)
RETURNS bigint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT dv_internal.merge_base(dv.resolve_ref(p_dataset, p_a), dv.resolve_ref(p_dataset, p_b))
$$;
COMMENT ON FUNCTION dv.merge_base(text, text, text) IS 'The version id of the newest common ancestor of two refs.
Example: SELECT dv.merge_base(''flights'', ''main'', ''relabel'');';

CREATE FUNCTION dv.merge(
  p_dataset text,
  p_from text,
  p_into text DEFAULT 'main',
  p_strategy text DEFAULT NULL,
  p_message text DEFAULT NULL
)
RETURNS TABLE (status text, version_id bigint, key jsonb, base jsonb, ours jsonb, theirs jsonb)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Three-way merge of p_from (theirs) into branch p_into (ours) by key, through the merge
-- base. Per candidate key (from the deltas on both paths): unchanged on one side -> the
-- other side's entry; same change on both -> kept; different changes -> conflict,
-- resolved by p_strategy ours/theirs, else returned as rows and nothing is committed.
-- Keyless datasets merge counts (ours + theirs - base), which never conflicts.
-- The merge version's delta (relative to ours) inherits both parents' delta tables.
DECLARE
  v_ds bigint := dv_internal.dataset_id(p_dataset);
  v_keys text[] := dv_internal.key_columns(v_ds);
  v_ours bigint;
  v_kind text;
  v_theirs bigint;
  v_base bigint;
  v_names text[];
  v_types text[];
  v_ocols text[];
  v_tcols text[];
  v_sel text[] := '{}';
  v_i int;
  v_n bigint;
  v_nk bigint;
  v_sys constant text := ' - ''_dv_key'' - ''_dv_hash'' - ''_dv_count''';
  v_keyexpr text;
  v_res record;
BEGIN
  IF p_strategy IS NOT NULL AND p_strategy NOT IN ('ours', 'theirs') THEN
    RAISE EXCEPTION 'merge strategy "%" is not known', p_strategy
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ours or theirs, or leave it out to get conflicts back as rows';
  END IF;
  SELECT r.version_id, r.kind INTO v_ours, v_kind FROM dv.refs r WHERE r.dataset_id = v_ds AND r.name = p_into FOR UPDATE;
  IF v_ours IS NULL THEN
    RAISE EXCEPTION 'dataset "%" has no branch "%"', p_dataset, p_into
      USING ERRCODE = 'undefined_object', HINT = 'Merge into an existing branch';
  ELSIF v_kind <> 'branch' THEN
    RAISE EXCEPTION '"%" of dataset "%" is a tag; merges go into branches', p_into, p_dataset
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Merge into a branch, e.g. main';
  END IF;
  v_theirs := dv.resolve_ref(p_dataset, p_from);
  v_base := dv_internal.merge_base(v_ours, v_theirs);

  IF v_base = v_theirs THEN
    RETURN QUERY SELECT 'up-to-date'::text, v_ours, NULL::jsonb, NULL::jsonb, NULL::jsonb, NULL::jsonb;
    RETURN;
  ELSIF v_base = v_ours THEN
    PERFORM set_config('pgdv.reason', format('merge %s (fast-forward)', p_from), true);
    UPDATE dv.refs r SET version_id = v_theirs WHERE r.dataset_id = v_ds AND r.name = p_into;
    PERFORM set_config('pgdv.reason', '', true);
    RETURN QUERY SELECT 'fast-forward'::text, v_theirs, NULL::jsonb, NULL::jsonb, NULL::jsonb, NULL::jsonb;
    RETURN;
  END IF;

  -- Merged schema: ours, then columns only theirs has.
  SELECT coalesce(array_agg(c.column_name ORDER BY c.ordinal), '{}'), coalesce(array_agg(c.data_type ORDER BY c.ordinal), '{}')
    INTO v_names, v_types FROM dv_internal.version_cols(v_ours) c;
  v_ocols := v_names;
  SELECT coalesce(array_agg(c.column_name ORDER BY c.ordinal), '{}') INTO v_tcols FROM dv_internal.version_cols(v_theirs) c;
  SELECT v_names || coalesce(array_agg(c.column_name ORDER BY c.ordinal), '{}'), v_types || coalesce(array_agg(c.data_type ORDER BY c.ordinal), '{}')
    INTO v_names, v_types FROM dv_internal.version_cols(v_theirs) c WHERE NOT (c.column_name = ANY (v_ocols));

  DROP TABLE IF EXISTS pg_temp.dv_merge_k;
  EXECUTE format('CREATE TEMP TABLE dv_merge_k ON COMMIT DROP AS SELECT DISTINCT _dv_key FROM (%s UNION ALL %s) u',
    dv_internal.candidates_sql(v_base, v_ours), dv_internal.candidates_sql(v_base, v_theirs));
  CREATE UNIQUE INDEX ON pg_temp.dv_merge_k (_dv_key);
  ANALYZE pg_temp.dv_merge_k;
  SELECT count(*) INTO v_nk FROM pg_temp.dv_merge_k;

  -- Per key: base, ours, theirs entries (absent = NULL) and the decision.
  DROP TABLE IF EXISTS pg_temp.dv_merge_3;
  EXECUTE format($f$CREATE TEMP TABLE dv_merge_3 ON COMMIT DROP AS
    WITH b AS MATERIALIZED (%s), o AS MATERIALIZED (%s), t AS MATERIALIZED (%s)
    SELECT k._dv_key,
           b._dv_hash AS bh, coalesce(b._dv_count, 0) AS bc, o._dv_hash AS oh, coalesce(o._dv_count, 0) AS oc,
           t._dv_hash AS th, coalesce(t._dv_count, 0) AS tc,
           CASE WHEN b._dv_key IS NULL THEN NULL ELSE to_jsonb(b) %4$s END AS bj,
           CASE WHEN o._dv_key IS NULL THEN NULL ELSE to_jsonb(o) %4$s END AS oj,
           CASE WHEN t._dv_key IS NULL THEN NULL ELSE to_jsonb(t) %4$s END AS tj
    FROM pg_temp.dv_merge_k k LEFT JOIN b ON b._dv_key = k._dv_key LEFT JOIN o ON o._dv_key = k._dv_key LEFT JOIN t ON t._dv_key = k._dv_key$f$,
    dv_internal.read_sql(v_base, 'pg_temp.dv_merge_k', NULL, v_nk), dv_internal.read_sql(v_ours, 'pg_temp.dv_merge_k', NULL, v_nk),
    dv_internal.read_sql(v_theirs, 'pg_temp.dv_merge_k', NULL, v_nk), v_sys);

  IF v_keys IS NULL THEN
    -- Counts merge: r = ours + theirs - base.
    ALTER TABLE pg_temp.dv_merge_3 ADD COLUMN rc bigint, ADD COLUMN take text;
    UPDATE pg_temp.dv_merge_3 SET rc = greatest(oc + tc - bc, 0);
    UPDATE pg_temp.dv_merge_3 SET take = CASE WHEN rc = oc THEN 'ours' ELSE 'count' END;
  ELSE
    ALTER TABLE pg_temp.dv_merge_3 ADD COLUMN take text;
    UPDATE pg_temp.dv_merge_3 SET take = CASE
      WHEN oh IS NOT DISTINCT FROM th THEN 'ours'
      WHEN bh IS NOT DISTINCT FROM oh THEN 'theirs'
      WHEN bh IS NOT DISTINCT FROM th THEN 'ours'
      ELSE coalesce(p_strategy, 'conflict') END;
    SELECT count(*) INTO v_n FROM pg_temp.dv_merge_3 WHERE take = 'conflict';
    IF v_n > 0 THEN
      v_keyexpr := (SELECT format('jsonb_build_object(%s)', string_agg(format('%L, coalesce(oj -> %L, tj -> %L, bj -> %L)', k, k, k, k), ', ')) FROM unnest(v_keys) k);
      RETURN QUERY EXECUTE format('SELECT ''conflict''::text, NULL::bigint, %s, bj, oj, tj FROM pg_temp.dv_merge_3 WHERE take = ''conflict'' ORDER BY _dv_key', v_keyexpr);
      DROP TABLE pg_temp.dv_merge_3;
      DROP TABLE pg_temp.dv_merge_k;
      RETURN;
    END IF;
  END IF;

  -- The change relation against ours: keys whose result is theirs' entry (or a new count).
  FOR v_i IN 1..cardinality(v_names) LOOP
    IF v_names[v_i] = ANY (v_tcols) THEN
      v_sel := v_sel || format('CASE WHEN t._dv_key IS NOT NULL THEN t.%1$I ELSE b.%1$I END AS %1$I', v_names[v_i]);
    ELSE
      v_sel := v_sel || format('NULL::%s AS %I', v_types[v_i], v_names[v_i]);
    END IF;
  END LOOP;
  DROP TABLE IF EXISTS pg_temp.dv_merge_c;
  IF v_keys IS NULL THEN
    -- Row values of a keyless entry: any side that has it (theirs, else base, else ours).
    EXECUTE format($f$CREATE TEMP TABLE dv_merge_c ON COMMIT DROP AS
      WITH b AS MATERIALIZED (%s), o AS MATERIALIZED (%s), t AS MATERIALIZED (%s)
      SELECT %s, m._dv_key, CASE WHEN m.rc > 0 THEN m._dv_key END AS _dv_hash, m.rc AS _dv_count,
             m.oh AS _dv_old_hash, m.oc AS _dv_old_count
      FROM pg_temp.dv_merge_3 m LEFT JOIN t ON t._dv_key = m._dv_key LEFT JOIN b ON b._dv_key = m._dv_key
      LEFT JOIN o ON o._dv_key = m._dv_key
      WHERE m.take = 'count'$f$,
      dv_internal.read_sql(v_base, 'pg_temp.dv_merge_k', v_theirs, v_nk), dv_internal.read_sql(v_ours, 'pg_temp.dv_merge_k', v_theirs, v_nk),
      dv_internal.read_sql(v_theirs, 'pg_temp.dv_merge_k', NULL, v_nk),
      (SELECT string_agg(format('CASE WHEN t._dv_key IS NOT NULL THEN t.%1$I WHEN b._dv_key IS NOT NULL THEN b.%1$I ELSE o.%1$I END AS %1$I', n), ', ') FROM unnest(v_names) n WHERE n = ANY (v_tcols))
        || coalesce(', ' || (SELECT string_agg(format('NULL::%s AS %I', v_types[array_position(v_names, n)], n), ', ') FROM unnest(v_names) n WHERE NOT (n = ANY (v_tcols))), ''));
  ELSE
    EXECUTE format($f$CREATE TEMP TABLE dv_merge_c ON COMMIT DROP AS
      WITH t AS MATERIALIZED (%s), b AS MATERIALIZED (%s)
      SELECT %s, m._dv_key, m.th AS _dv_hash, m.tc AS _dv_count, m.oh AS _dv_old_hash, m.oc AS _dv_old_count
      FROM pg_temp.dv_merge_3 m LEFT JOIN t ON t._dv_key = m._dv_key LEFT JOIN b ON b._dv_key = m._dv_key
      WHERE m.take = 'theirs' AND m.th IS DISTINCT FROM m.oh$f$,
      dv_internal.read_sql(v_theirs, 'pg_temp.dv_merge_k', NULL, v_nk),
      -- tombstones keep their key values; they come from base (or ours) when theirs removed the key
      dv_internal.read_sql(v_ours, 'pg_temp.dv_merge_k', v_theirs, v_nk),
      array_to_string(v_sel, ', '));
  END IF;
  -- The result's column order must be v_names: reorder by selecting into make_version.
  SELECT * INTO v_res FROM dv_internal.make_version(v_ds, ARRAY[v_ours, v_theirs], v_names, v_types, 'pg_temp.dv_merge_c',
    coalesce(p_message, format('merge %s into %s', p_from, p_into)), '{}'::jsonb, p_into, format('merge %s', p_from));
  DROP TABLE pg_temp.dv_merge_c;
  DROP TABLE pg_temp.dv_merge_3;
  DROP TABLE pg_temp.dv_merge_k;
  RETURN QUERY SELECT 'merged'::text, v_res.version_id, NULL::jsonb, NULL::jsonb, NULL::jsonb, NULL::jsonb;
END
$$;
COMMENT ON FUNCTION dv.merge(text, text, text, text, text) IS 'Three-way merge of a ref into a branch by key through their merge base; returns one row (merged, fast-forward or up-to-date) or one row per conflict (key, base, ours, theirs as jsonb) with nothing committed unless p_strategy is ours or theirs.
Example: SELECT * FROM dv.merge(''flights'', ''relabel'', ''main'');';

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA dv, dv_internal FROM PUBLIC;
REVOKE ALL ON dv.settings, dv.version_tables, dv.version_columns, dv.tag_views FROM PUBLIC;
GRANT SELECT ON dv.settings, dv.version_tables, dv.version_columns, dv.tag_views TO pgdv_reader;
GRANT UPDATE ON dv.settings TO pgdv_admin;
GRANT EXECUTE ON FUNCTION
  dv_internal.key_columns(bigint), dv_internal.files_columns(), dv_internal.canon_sql(text, text),
  dv_internal.hash_sql(text, text[], text[]), dv_internal.version_cols(bigint), dv_internal.chain(bigint),
  dv_internal.read_sql(bigint, text, bigint, bigint), dv_internal.rows_sql(bigint), dv_internal.first_parent_chain(bigint),
  dv_internal.candidates_sql(bigint, bigint), dv_internal.levels_sql(bigint[], bigint), dv_internal.diff_sql(bigint, bigint, boolean), dv_internal.merge_base(bigint, bigint),
  dv_internal.stage_registry(), dv_internal.lanes_sql(text, text), dv_internal.content_hash(numeric, bigint)
TO pgdv_reader;
GRANT EXECUTE ON FUNCTION
  dv.dataset_columns(text, text), dv.rows_sql(text, text), dv.rows(text, text), dv.row(text, text, jsonb),
  dv.diff(text, text, text, boolean), dv.diff_summary(text, text, text), dv.diff_schema(text, text, text),
  dv.merge_base(text, text, text)
TO pgdv_reader;
GRANT EXECUTE ON FUNCTION
  dv.stage(text, text), dv.commit(text, regclass, text, text, text, text, boolean, jsonb),
  dv.checkpoint(text, text), dv.merge(text, text, text, text, text)
TO pgdv_writer;
