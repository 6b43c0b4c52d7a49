-- 008 rows layout: a keyed dataset with one key column stores its rows as they are; a
-- cheaper SQL for the (unchanged) row encoding.
--
-- Until now every version table carried, per row, a 32-byte key hash (_dv_key, with a
-- unique index on it), a 32-byte row hash (_dv_hash, NULL for a tombstone) and a count
-- (_dv_count). At 5M rows that made the base version 2.2 times a plain copy of the rows
-- with its primary key, and a first commit computed two SHA-256 per row.
--
-- Layout 2, chosen at a dataset's first commit when it has exactly one key column of a
-- type with default btree and hash operator classes (ids, text, uuid, dates, ...):
--   * version tables hold the user columns plus _dv_gone boolean: NULL for a row, true
--     for a tombstone (which carries only its key). A NULL costs no space: the tuple's
--     null bitmap fits in the header padding for up to eight columns.
--   * the unique index is on the key column itself, so a point lookup or a restricted
--     read probes the same index a plain table's primary key would have.
--   * row hashes are computed when they are needed: a version's content hash (every row
--     of a first commit, then only the changed rows), diffs and merges (only the rows on
--     the path), dv.verify. The encoding is unchanged (README "Canonical row encoding"),
--     so every content hash, diff hash and Node-computed hash stays what it was.
-- Layout 1 (the one above) stays for keyless datasets (the row hash is the identity),
-- composite keys, and every dataset committed before this migration.
--
-- Readers see one shape whatever the layout: dv_internal.read_sql and levels_sql still
-- return the user columns plus _dv_key (layout 2: the key value itself), _dv_hash and
-- _dv_count (1 for a row, 0 for a tombstone), so diffs and merges are unchanged.

ALTER TABLE dv.datasets ADD COLUMN row_layout smallint CHECK (row_layout IN (1, 2));
COMMENT ON COLUMN dv.datasets.row_layout IS 'How version tables store rows, fixed at the first commit: 1 = with key hash, row hash and count columns (keyless and composite-key datasets); 2 = the user columns and a tombstone flag, indexed on the one key column (migration 008). NULL until the first commit.';
UPDATE dv.datasets d SET row_layout = 1
WHERE EXISTS (SELECT 1 FROM dv.version_tables t WHERE t.dataset_id = d.id);

CREATE FUNCTION dv_internal.row_layout(p_ds bigint)
RETURNS smallint
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(d.row_layout, 1::smallint) FROM dv.datasets d WHERE d.id = p_ds
$$;
COMMENT ON FUNCTION dv_internal.row_layout(bigint) IS 'A dataset''s row layout (1 or 2, see dv.datasets.row_layout); 1 before its first commit.';

CREATE FUNCTION dv_internal.settle_layout(p_ds bigint, p_names text[], p_types text[])
RETURNS smallint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- The dataset's layout; at its first commit (none recorded yet) chosen from the schema
-- being committed and recorded. Only that first time is the dataset's row locked: a
-- lock on every commit would make commits to different branches wait for each other.
DECLARE
  v_layout smallint;
  v_keys text[];
  v_type regtype;
BEGIN
  SELECT d.row_layout INTO v_layout FROM dv.datasets d WHERE d.id = p_ds;
  IF v_layout IS NOT NULL THEN
    RETURN v_layout;
  END IF;
  SELECT d.row_layout INTO v_layout FROM dv.datasets d WHERE d.id = p_ds FOR UPDATE;
  IF v_layout IS NOT NULL THEN  -- another first commit chose it meanwhile
    RETURN v_layout;
  END IF;
  v_keys := dv_internal.key_columns(p_ds);
  v_layout := 1;
  IF cardinality(v_keys) = 1 AND array_position(p_names, v_keys[1]) IS NOT NULL THEN
    v_type := to_regtype(p_types[array_position(p_names, v_keys[1])]);
    IF v_type IS NOT NULL
       AND EXISTS (SELECT 1 FROM pg_opclass o JOIN pg_am a ON a.oid = o.opcmethod
                   WHERE a.amname = 'btree' AND o.opcdefault AND o.opcintype = v_type)
       AND EXISTS (SELECT 1 FROM pg_opclass o JOIN pg_am a ON a.oid = o.opcmethod
                   WHERE a.amname = 'hash' AND o.opcdefault AND o.opcintype = v_type) THEN
      v_layout := 2;
    END IF;
  END IF;
  UPDATE dv.datasets d SET row_layout = v_layout WHERE d.id = p_ds;
  RETURN v_layout;
END
$$;
COMMENT ON FUNCTION dv_internal.settle_layout(bigint, text[], text[]) IS 'Returns a dataset''s row layout, choosing and recording it at the first commit: 2 for one key column whose type has default btree and hash operator classes, else 1.';

CREATE FUNCTION dv_internal.key_type(p_ds bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- The type of _dv_key in a dataset's entries: bytea (a key or row hash) in layout 1,
  -- the key column's type in layout 2.
  SELECT CASE WHEN dv_internal.row_layout(p_ds) = 2
    THEN (SELECT c.data_type FROM dv.version_columns c JOIN dv.versions v ON v.id = c.version_id
          WHERE v.dataset_id = p_ds AND c.is_key ORDER BY c.version_id LIMIT 1)
    ELSE 'bytea' END
$$;
COMMENT ON FUNCTION dv_internal.key_type(bigint) IS 'The SQL type of _dv_key in a dataset''s entries: bytea (layout 1) or its key column''s type (layout 2).';

CREATE FUNCTION dv_internal.entry_sql(p_ds bigint, p_level bigint, p_names text[], p_types text[], p_hashes boolean)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The select list of an entry read (as alias x) from the table of version p_level: the
-- columns p_names (NULL of its p_types where that version lacks one), then _dv_key,
-- _dv_hash, _dv_count. Layout 2 derives the last three: the key column; the row hash
-- over the level's own columns (only when p_hashes, else NULL), and 1; or NULL and 0
-- for a tombstone.
DECLARE
  v_level_names text[];
  v_level_types text[];
  v_sel text[] := '{}';
  v_i int;
BEGIN
  SELECT coalesce(array_agg(c.column_name ORDER BY c.ordinal), '{}'), coalesce(array_agg(c.data_type ORDER BY c.ordinal), '{}')
    INTO v_level_names, v_level_types FROM dv_internal.version_cols(p_level) c;
  FOR v_i IN 1..coalesce(cardinality(p_names), 0) LOOP
    IF p_names[v_i] = ANY (v_level_names) THEN
      v_sel := v_sel || format('x.%I', p_names[v_i]);
    ELSE
      v_sel := v_sel || format('NULL::%s AS %I', p_types[v_i], p_names[v_i]);
    END IF;
  END LOOP;
  IF dv_internal.row_layout(p_ds) = 1 THEN
    v_sel := v_sel || 'x._dv_key, x._dv_hash, x._dv_count'::text;
  ELSE
    v_sel := v_sel || format('x.%I AS _dv_key, %s AS _dv_hash, CASE WHEN x._dv_gone THEN 0 ELSE 1 END::bigint AS _dv_count',
      (dv_internal.key_columns(p_ds))[1],
      CASE WHEN p_hashes THEN format('CASE WHEN x._dv_gone THEN NULL ELSE %s END', dv_internal.hash_sql('x', v_level_names, v_level_types))
           ELSE 'NULL::bytea' END);
  END IF;
  RETURN array_to_string(v_sel, ', ');
END
$$;
COMMENT ON FUNCTION dv_internal.entry_sql(bigint, bigint, text[], text[], boolean) IS 'The select list (alias x) of entries read from one version''s table: given user columns, then _dv_key, _dv_hash, _dv_count, for either row layout.';

-- ---------------------------------------------------------------------------
-- Row hash SQL: one format() call for a row without NULLs
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION dv_internal.hash_sql(p_alias text, p_names text[], p_types text[])
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Row encoding: for each column in order whose value is not NULL, the netstrings of
-- its name and of its canonical text ("<bytes>:<text>,"), concatenated; the hash is
-- SHA-256 of those UTF-8 bytes. NULL columns contribute nothing, so adding a column
-- (NULL in older rows) leaves every existing row hash unchanged.
-- A row with no NULL is encoded by one format() call (the names are in its format
-- string): on 5M five-column rows with the embedded PostgreSQL 17, 5.0 s including
-- SHA-256, against 14.8 s for the encoding alone through per-column || chains. Those
-- chains remain for rows with a NULL (each chain is NULL when its value is, and concat()
-- skips NULL parts). IMMUTABLE holds: a database's server_encoding never changes.
DECLARE
  v_parts text[] := '{}';
  v_args text[] := '{}';
  v_fmt text := '';
  v_notnull text[] := '{}';
  v_i int;
  v_col text;
  v_canon text;
  v_enc text;
BEGIN
  IF coalesce(cardinality(p_names), 0) = 0 THEN
    RETURN 'sha256(''''::bytea)';
  END IF;
  FOR v_i IN 1..cardinality(p_names) LOOP
    v_col := format('%s.%I', p_alias, p_names[v_i]);
    v_canon := dv_internal.canon_sql(v_col, p_types[v_i]);
    v_parts := v_parts || format('(%L::text || octet_length(%s) || '':'' || %s || '','')',
      format('%s:%s,', octet_length(p_names[v_i]), p_names[v_i]), v_canon, v_canon);
    v_fmt := v_fmt || replace(format('%s:%s,', octet_length(p_names[v_i]), p_names[v_i]), '%', '%%') || '%s:%s,';
    v_args := v_args || format('octet_length(%s)', v_canon) || v_canon;
    v_notnull := v_notnull || format('%s IS NOT NULL', v_col);
  END LOOP;
  v_enc := format('concat(%s)', array_to_string(v_parts, ', '));
  IF cardinality(v_args) < 100 THEN  -- format() takes at most 100 arguments
    v_enc := format('CASE WHEN %s THEN format(%L, %s) ELSE %s END',
      array_to_string(v_notnull, ' AND '), v_fmt, array_to_string(v_args, ', '), v_enc);
  END IF;
  IF current_setting('server_encoding') = 'UTF8' THEN
    RETURN format('sha256(textsend(%s))', v_enc);
  END IF;
  RETURN format('sha256(convert_to(%s, ''UTF8''))', v_enc);
END
$$;

-- ---------------------------------------------------------------------------
-- Reads
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv_internal.entries_sql(p_version bigint, p_restrict text, p_cols_of bigint, p_restrict_rows bigint, p_hashes boolean)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- A SELECT of a version's live entries: its user columns (those of p_cols_of, default
-- the version's own; missing ones read NULL) plus _dv_key, _dv_hash, _dv_count. Per key
-- the entry of the nearest level wins (a newer entry or tombstone shadows older ones);
-- tombstones (_dv_count 0) are dropped. One pass, linear in the chain: the newer levels
-- (small deltas) are resolved together (DISTINCT ON key, nearest level first); the
-- oldest level (the base delta or a checkpoint, usually holding almost every row) is
-- read once and anti-joined against the newer levels' keys (a restricted read: against
-- dv_new, their resolution), so its rows are never sorted.
-- p_restrict names a relation with a _dv_key column (unique keys): only those keys are
-- read. p_restrict_rows estimates its size: few keys (or unknown) probe the oldest
-- level's index per key; more than ~3% of its rows read it in one sequential pass.
-- The newer levels likewise: many keys against them (more than ~1/16 of their rows per
-- level) are hash-joined to one pass over them instead of probing every level per key.
-- Layout 2 tables have no stored hashes: p_hashes false leaves _dv_hash NULL (a read of
-- the values only), true computes each live row's hash from its level's columns.
DECLARE
  v_ds bigint := (SELECT v.dataset_id FROM dv.versions v WHERE v.id = p_version);
  v_layout smallint := dv_internal.row_layout(v_ds);
  v_kx text;         -- the key of a row of alias x, as stored
  v_ky text;         -- the same for alias y
  v_cols_version bigint := coalesce(p_cols_of, p_version);
  v_names text[];
  v_types text[];
  v_level record;
  v_list text;
  v_sel text[];
  v_i int;
  v_parts text[] := '{}';
  v_part_lvl int[] := '{}';
  v_part_rel name[] := '{}';
  v_part_sel text[] := '{}';
  v_fence boolean;
  v_n int := 0;
  v_base_rel name;
  v_base_lvl int;
  v_out text;
  v_new text;
  v_base text;
  v_base_rows real;
  v_keys_of text;
  v_rr text;
  v_new_rows real := 0;
  v_levels text;
BEGIN
  IF v_layout = 2 THEN
    v_kx := format('x.%I', (dv_internal.key_columns(v_ds))[1]);
    v_ky := format('y.%I', (dv_internal.key_columns(v_ds))[1]);
  ELSE
    v_kx := 'x._dv_key';
    v_ky := 'y._dv_key';
  END IF;
  SELECT coalesce(array_agg(c.column_name ORDER BY c.ordinal), '{}'), coalesce(array_agg(c.data_type ORDER BY c.ordinal), '{}')
    INTO v_names, v_types FROM dv_internal.version_cols(v_cols_version) c;
  v_out := (SELECT string_agg(format('%I', n) || ', ', '') FROM unnest(v_names) n);
  v_out := coalesce(v_out, '') || '_dv_key, _dv_hash, _dv_count';
  v_keys_of := CASE WHEN p_restrict IS NULL THEN NULL ELSE format('(SELECT dv_rr._dv_key FROM %s dv_rr)', p_restrict) END;
  FOR v_level IN SELECT * FROM dv_internal.chain(p_version) ORDER BY lvl LOOP
    v_list := dv_internal.entry_sql(v_ds, v_level.version_id, v_names, v_types, p_hashes);
    IF v_base_rel IS NOT NULL THEN
      -- the previous "oldest" level is a newer one after all
      v_part_lvl := v_part_lvl || v_base_lvl;
      v_part_rel := v_part_rel || v_base_rel;
      v_part_sel := v_part_sel || v_base;
      v_new_rows := v_new_rows + coalesce((SELECT greatest(c.reltuples, 0) FROM pg_class c WHERE c.oid = format('dv_rows.%I', v_base_rel)::regclass), 0);
    END IF;
    v_n := v_n + 1;
    v_base_rel := v_level.rel;
    v_base_lvl := v_level.lvl;
    v_base := v_list;
  END LOOP;
  IF v_n = 0 THEN
    v_sel := '{}';
    FOR v_i IN 1..coalesce(cardinality(v_names), 0) LOOP
      v_sel := v_sel || format('NULL::%s AS %I', v_types[v_i], v_names[v_i]);
    END LOOP;
    v_sel := v_sel || ARRAY[format('NULL::%s AS _dv_key', dv_internal.key_type(v_ds)), 'NULL::bytea AS _dv_hash', 'NULL::bigint AS _dv_count'];
    RETURN format('SELECT %s WHERE false', array_to_string(v_sel, ', '));
  END IF;

  -- The oldest level: v_base is its select list. How to reach its rows:
  IF p_restrict IS NULL THEN
    v_base := format('SELECT %s FROM ONLY dv_rows.%I x WHERE %s', v_base, v_base_rel,
      CASE WHEN v_layout = 2 THEN 'x._dv_gone IS NULL' ELSE 'x._dv_hash IS NOT NULL' END);
    IF v_n > 1 THEN
      -- Anti-joined to the plain union of the newer levels' keys, not to the resolved
      -- dv_new: the planner sees the real row counts and, where the oldest level is
      -- stored in key order (layout 2, loaded sorted), merges its index with the levels'
      -- indexes instead of spilling a hash of every newer key (5M rows at depth 19:
      -- 4.0 s instead of 6.6 s, against 1.7 s for a plain table).
      v_base := v_base || format(' AND NOT EXISTS (SELECT 1 FROM (%s) dv_k WHERE dv_k._dv_k = %s)',
        (SELECT string_agg(format('SELECT %s AS _dv_k FROM ONLY dv_rows.%I x', v_kx, r), ' UNION ALL ') FROM unnest(v_part_rel) r),
        v_kx);
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
      v_base := format('SELECT * FROM (%s) dv_b WHERE dv_b._dv_count > 0',
        format('SELECT %s FROM (SELECT * FROM ONLY dv_rows.%I OFFSET 0) x JOIN %s dv_rr ON dv_rr._dv_key = %s',
          v_list, v_base_rel, v_rr, v_kx));
    ELSE
      -- Few keys: one index probe per wanted key (LATERAL + OFFSET 0 force it).
      v_base := format('SELECT * FROM (SELECT %s FROM %s dv_rr CROSS JOIN LATERAL (SELECT * FROM ONLY dv_rows.%I y WHERE %s = dv_rr._dv_key OFFSET 0) x) dv_b WHERE dv_b._dv_count > 0',
        v_list, v_rr, v_base_rel, v_ky);
    END IF;
  END IF;
  IF v_n = 1 THEN
    RETURN v_base;
  END IF;
  -- Restricted: each newer level is semi-joined with the wanted keys (the planner picks
  -- a hash of the keys or index probes into the level); with many keys, OFFSET 0 keeps
  -- it from probing: one pass over each level, hash-joined. The filter sits inside each
  -- level so that layout-2 row hashes are computed for the wanted rows only.
  v_fence := p_restrict IS NOT NULL AND p_restrict_rows IS NOT NULL AND p_restrict_rows::real * (v_n - 1) * 16 > v_new_rows;
  FOR v_i IN 1..cardinality(v_part_rel) LOOP
    v_parts := v_parts || format('SELECT %s AS _dv_lvl, %s FROM %s x%s', v_part_lvl[v_i], v_part_sel[v_i],
      CASE WHEN v_fence THEN format('(SELECT * FROM ONLY dv_rows.%I OFFSET 0)', v_part_rel[v_i]) ELSE format('ONLY dv_rows.%I', v_part_rel[v_i]) END,
      CASE WHEN p_restrict IS NULL THEN '' ELSE format(' WHERE %s IN %s', v_kx, v_keys_of) END);
  END LOOP;
  v_levels := array_to_string(v_parts, ' UNION ALL ');
  IF v_n = 2 THEN
    v_new := format('SELECT %s FROM (%s) x', v_out, v_levels);  -- one delta: keys are unique already
  ELSE
    v_new := format('SELECT DISTINCT ON (x._dv_key) %s FROM (%s) x ORDER BY x._dv_key, x._dv_lvl', v_out, v_levels);
  END IF;
  IF p_restrict IS NULL THEN
    RETURN format('SELECT * FROM (SELECT %s FROM (%s) dv_n WHERE dv_n._dv_count > 0 UNION ALL %s) dv_r', v_out, v_new, v_base);
  END IF;
  RETURN format('SELECT * FROM (WITH dv_new AS MATERIALIZED (%s) SELECT %s FROM dv_new WHERE _dv_count > 0 UNION ALL %s) dv_r',
    v_new, v_out, v_base);
END
$$;
COMMENT ON FUNCTION dv_internal.entries_sql(bigint, text, bigint, bigint, boolean) IS 'SQL of a version''s live entries (user columns + _dv_key, _dv_hash, _dv_count), optionally restricted to the keys of a relation; p_hashes false skips computing layout-2 row hashes. Example: SELECT dv_internal.entries_sql(42, NULL, NULL, NULL, false)';

CREATE OR REPLACE FUNCTION dv_internal.read_sql(p_version bigint, p_restrict text DEFAULT NULL, p_cols_of bigint DEFAULT NULL, p_restrict_rows bigint DEFAULT NULL)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- Entries with their row hashes, as diffs, merges and commits compare them.
  SELECT dv_internal.entries_sql(p_version, p_restrict, p_cols_of, p_restrict_rows, true)
$$;

CREATE OR REPLACE FUNCTION dv_internal.rows_sql(p_version bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The user columns only: no row hashes are computed for a plain read.
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
    RETURN format('SELECT %s FROM (%s) r CROSS JOIN LATERAL generate_series(1, r._dv_count) dup', v_cols,
      dv_internal.entries_sql(p_version, NULL, NULL, NULL, false));
  END IF;
  RETURN format('SELECT %s FROM (%s) r', v_cols, dv_internal.entries_sql(p_version, NULL, NULL, NULL, false));
END
$$;

CREATE OR REPLACE FUNCTION dv_internal.levels_sql(p_versions bigint[], p_cols_of bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- SQL of the newest entry per key (tombstones included) among the delta tables of
-- p_versions (newest first), with the user columns of p_cols_of (NULL where a delta
-- lacks one) plus _dv_key, _dv_hash, _dv_count (row hashes computed for layout 2). Used
-- by diffs for the deltas a side has on top of the version both sides share.
DECLARE
  v_ds bigint := (SELECT v.dataset_id FROM dv.versions v WHERE v.id = p_cols_of);
  v_names text[];
  v_types text[];
  v_parts text[] := '{}';
  v_v record;
  v_out text;
BEGIN
  SELECT coalesce(array_agg(c.column_name ORDER BY c.ordinal), '{}'), coalesce(array_agg(c.data_type ORDER BY c.ordinal), '{}')
    INTO v_names, v_types FROM dv_internal.version_cols(p_cols_of) c;
  FOR v_v IN SELECT u.o, t.version_id, t.delta_table FROM unnest(p_versions) WITH ORDINALITY AS u(v, o)
             JOIN dv.version_tables t ON t.version_id = u.v ORDER BY u.o LOOP
    v_parts := v_parts || format('SELECT %s AS _dv_lvl, %s FROM ONLY dv_rows.%I x', v_v.o,
      dv_internal.entry_sql(v_ds, v_v.version_id, v_names, v_types, true), v_v.delta_table);
  END LOOP;
  v_out := coalesce((SELECT string_agg(format('%I', n) || ', ', '') FROM unnest(v_names) n), '') || '_dv_key, _dv_hash, _dv_count';
  IF cardinality(v_parts) = 0 THEN
    RETURN format('SELECT %s WHERE false',
      coalesce((SELECT string_agg(format('NULL::%s AS %I', v_types[o], n) || ', ', '') FROM unnest(v_names) WITH ORDINALITY AS u(n, o)), '')
      || format('NULL::%s AS _dv_key, NULL::bytea AS _dv_hash, NULL::bigint AS _dv_count', coalesce(dv_internal.key_type(v_ds), 'bytea')));
  ELSIF cardinality(v_parts) = 1 THEN
    RETURN format('SELECT %s FROM (%s) x', v_out, v_parts[1]);
  END IF;
  RETURN format('SELECT DISTINCT ON (x._dv_key) %s FROM (%s) x ORDER BY x._dv_key, x._dv_lvl', v_out, array_to_string(v_parts, ' UNION ALL '));
END
$$;

CREATE OR REPLACE FUNCTION dv_internal.candidates_sql(p_a bigint, p_b bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Keys that may differ between versions a and b: every key in the delta tables on the
-- first-parent chains of a and b above the newest version both chains share. Each
-- delta is relative to its first parent, so any key outside these deltas has the same
-- entry in a and b as in that shared version. Cost follows the size of the change.
DECLARE
  v_ds bigint := (SELECT v.dataset_id FROM dv.versions v WHERE v.id = p_a);
  v_key text := CASE WHEN dv_internal.row_layout(v_ds) = 2 THEN format('%I AS _dv_key', (dv_internal.key_columns(v_ds))[1]) ELSE '_dv_key' END;
  v_parts text[];
BEGIN
  WITH ca AS (SELECT * FROM dv_internal.first_parent_chain(p_a)),
       cb AS (SELECT * FROM dv_internal.first_parent_chain(p_b)),
       meet AS (SELECT min(ca.pos) AS pa, min(cb.pos) AS pb FROM ca JOIN cb USING (version_id)),
       vs AS (SELECT ca.version_id FROM ca, meet WHERE ca.pos < coalesce(meet.pa, 2147483647)
              UNION SELECT cb.version_id FROM cb, meet WHERE cb.pos < coalesce(meet.pb, 2147483647))
  SELECT array_agg(format('SELECT %s FROM ONLY dv_rows.%I', v_key, t.delta_table) ORDER BY t.version_id)
    INTO v_parts
  FROM vs JOIN dv.version_tables t ON t.version_id = vs.version_id;
  IF v_parts IS NULL THEN
    RETURN format('SELECT NULL::%s AS _dv_key WHERE false', coalesce(dv_internal.key_type(v_ds), 'bytea'));
  END IF;
  RETURN format('SELECT DISTINCT _dv_key FROM (%s) u', array_to_string(v_parts, ' UNION ALL '));
END
$$;

CREATE OR REPLACE FUNCTION dv_internal.checkpoint(p_version bigint)
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- Materializes a version into dv_rows."c<dataset>_v<version>"; reads of it and of its
-- descendants stop there instead of walking further back. Layout 2 copies the values
-- only (no hashes to compute) and indexes the key column.
DECLARE
  v_t dv.version_tables;
  v_table name;
  v_cols text;
  v_key text;
BEGIN
  SELECT * INTO v_t FROM dv.version_tables t WHERE t.version_id = p_version FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;  -- a root version: nothing to materialize
  ELSIF v_t.checkpoint_table IS NOT NULL THEN
    RETURN v_t.checkpoint_table;
  END IF;
  v_table := format('c%s_v%s', v_t.dataset_id, p_version);
  SELECT string_agg(format('%I', c.column_name), ', ' ORDER BY c.ordinal) INTO v_cols FROM dv_internal.version_cols(p_version) c;
  IF dv_internal.row_layout(v_t.dataset_id) = 2 THEN
    v_key := (dv_internal.key_columns(v_t.dataset_id))[1];
    EXECUTE format('CREATE TABLE dv_rows.%I AS SELECT %s, NULL::boolean AS _dv_gone FROM (%s) r',
      v_table, v_cols, dv_internal.entries_sql(p_version, NULL, NULL, NULL, false));
    EXECUTE format('CREATE UNIQUE INDEX ON dv_rows.%I (%I)', v_table, v_key);
  ELSE
    EXECUTE format('CREATE TABLE dv_rows.%I AS SELECT %s, _dv_key, _dv_hash, _dv_count FROM (%s) r',
      v_table, v_cols, dv_internal.read_sql(p_version));
    EXECUTE format('CREATE UNIQUE INDEX ON dv_rows.%I (_dv_key)', v_table);
  END IF;
  EXECUTE format('ANALYZE dv_rows.%I', v_table);
  EXECUTE format('COMMENT ON TABLE dv_rows.%I IS %L', v_table,
    format('pgdv: checkpoint (full copy) of version %s of dataset %s. Read versions with dv.rows().', p_version, v_t.dataset_id));
  INSERT INTO dv_internal.dataset_relations (dataset_id, schema_name, rel_name, rel_kind) VALUES (v_t.dataset_id, 'dv_rows', v_table, 'table');
  UPDATE dv.version_tables t SET checkpoint_table = v_table, chain_depth = 0 WHERE t.version_id = p_version;
  RETURN v_table;
END
$$;

CREATE OR REPLACE FUNCTION dv.row(p_dataset text, p_ref text, p_key jsonb)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET "DateStyle" = 'ISO, MDY'
SET "TimeZone" = 'UTC'
SET "IntervalStyle" = 'postgres'
SET extra_float_digits = 1
AS $$
-- Point lookup by key: probes the unique index of each table on the version's chain, by
-- the key's hash (layout 1) or the key value itself (layout 2). Keyless datasets: p_key
-- is the whole row.
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
  IF dv_internal.row_layout(v_ds) = 2 THEN
    EXECUTE format('SELECT to_jsonb(r) - ''_dv_key'' - ''_dv_hash'' - ''_dv_count'' FROM (%s) r',
      dv_internal.entries_sql(v_version, format('(SELECT x.%1$I AS _dv_key FROM jsonb_to_record($1) AS x(%2$s))', v_keys[1], v_cols), NULL, 1, false))
      INTO v_out USING p_key;
    RETURN v_out;
  END IF;
  EXECUTE format('SELECT %s FROM jsonb_to_record($1) AS x(%s)', dv_internal.hash_sql('x', v_names, v_types), v_cols) INTO v_hash USING p_key;
  EXECUTE format('SELECT to_jsonb(r) - ''_dv_key'' - ''_dv_hash'' - ''_dv_count'' FROM (%s) r',
    dv_internal.read_sql(v_version, '(SELECT $1::bytea AS _dv_key)', NULL, 1))
    INTO v_out USING v_hash;
  RETURN v_out;
END
$$;

-- ---------------------------------------------------------------------------
-- Commits
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION dv_internal.make_version(
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
-- p_change is a relation name or a parenthesized query (no alias). On a dataset's first
-- commit it is read once (it may hash every staged row as it goes): the stats are taken
-- from the new table, and a repeated key surfaces when its unique index is built.
-- Layout 2 (migration 008) stores the user columns and _dv_gone (true = tombstone; the
-- key column holds _dv_key); a first commit hashes the stored rows once, in parallel.
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
  v_first_commit boolean;
  v_bad jsonb;
  v_dups bigint;
  v_layout smallint;
  v_key text;
  v_ins text;
BEGIN
  SELECT * INTO v_pv FROM dv.versions v WHERE v.id = v_first;
  SELECT * INTO v_pt FROM dv.version_tables t WHERE t.version_id = v_first;
  v_first_commit := v_pt.version_id IS NULL;  -- the first parent is a dataset's empty root
  v_layout := dv_internal.settle_layout(p_ds, p_names, p_types);
  v_key := CASE WHEN v_layout = 2 THEN v_keys[1] END;

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
      -- Layout 2: every entry, tombstones too, has its key, so the key column is NOT NULL
      -- (a first commit's staged rows are checked by this constraint).
      v_extra := v_extra || format('%I %s%s', p_names[v_i], p_types[v_i],
        CASE WHEN p_names[v_i] = v_key THEN ' NOT NULL' ELSE '' END);
    END IF;
  END LOOP;
  IF cardinality(v_inherit) = 0 AND v_layout = 2 THEN
    v_extra := v_extra || ARRAY['_dv_gone boolean'];
  ELSIF cardinality(v_inherit) = 0 THEN
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
    format('pgdv: rows changed by version %s of dataset %s against its first parent (tombstones: %s). Read versions with dv.rows().', v_id, p_ds,
      CASE WHEN v_layout = 2 THEN '_dv_gone true' ELSE '_dv_hash NULL' END));

  SELECT string_agg(format('%I', n), ', ') INTO v_cols FROM unnest(p_names) n;
  IF v_layout = 2 THEN
    -- The key column takes _dv_key (a tombstone's other columns may be NULL).
    SELECT string_agg(CASE WHEN n = v_key THEN format('dv_c._dv_key AS %I', n) ELSE format('dv_c.%I', n) END, ', ') INTO v_ins FROM unnest(p_names) n;
    BEGIN
      -- A later commit's delta (small) is written in key order, so that reads merging the
      -- chain's key indexes walk its heap in order too; a first commit keeps the order it
      -- was loaded in (sorting millions of rows would cost more than it saves).
      EXECUTE format('INSERT INTO dv_rows.%I (%s, _dv_gone) SELECT %s, CASE WHEN dv_c._dv_count = 0 THEN true END FROM %s dv_c%s',
        v_table, v_cols, v_ins, p_change, CASE WHEN v_first_commit THEN '' ELSE ' ORDER BY dv_c._dv_key' END);
    EXCEPTION WHEN not_null_violation THEN
      EXECUTE format('SELECT count(*), min(jsonb_build_object(%L, dv_c._dv_key)::text)::jsonb FROM %s dv_c WHERE dv_c._dv_key IS NULL',
        v_key, p_change) INTO v_dups, v_bad;
      IF v_dups = 0 THEN
        RAISE;
      END IF;
      RAISE EXCEPTION '% staged row(s) for dataset "%" have a NULL key column, e.g. %', v_dups, (SELECT d.name FROM dv.datasets d WHERE d.id = p_ds), v_bad
        USING ERRCODE = 'not_null_violation', HINT = format('Key columns %s must be set in every row', v_key);
    END;
  ELSE
    EXECUTE format('INSERT INTO dv_rows.%I (%s, _dv_key, _dv_hash, _dv_count) SELECT %s, _dv_key, _dv_hash, _dv_count FROM %s dv_c',
      v_table, v_cols, v_cols, p_change);
  END IF;
  GET DIAGNOSTICS v_delta_rows = ROW_COUNT;
  BEGIN
    EXECUTE format('CREATE UNIQUE INDEX ON dv_rows.%I (%I)', v_table, coalesce(v_key, '_dv_key'));
  EXCEPTION WHEN unique_violation THEN
    -- Only a first commit gets here (later commits check the staged keys before): name
    -- one repeated key, readable, and how many keys repeat.
    EXECUTE format('SELECT d.n, (SELECT jsonb_build_object(%s) FROM ONLY dv_rows.%I e WHERE e.%I = d.k LIMIT 1)
                    FROM (SELECT %I AS k, count(*) OVER () AS n FROM ONLY dv_rows.%I GROUP BY 1 HAVING count(*) > 1 LIMIT 1) d',
      (SELECT string_agg(format('%L, e.%I', k, k), ', ') FROM unnest(v_keys) k), v_table, coalesce(v_key, '_dv_key'),
      coalesce(v_key, '_dv_key'), v_table) INTO v_dups, v_bad;
    RAISE EXCEPTION 'staged rows for dataset "%" repeat key % (% duplicated key(s))', (SELECT d.name FROM dv.datasets d WHERE d.id = p_ds), v_bad, v_dups
      USING ERRCODE = 'unique_violation', HINT = 'Each key may appear once per commit; remove the duplicates';
  END;
  -- Small deltas are planned well from their page count; statistics pay off on big ones.
  IF v_delta_rows > 10000 THEN
    EXECUTE format('ANALYZE dv_rows.%I', v_table);
  END IF;

  -- Row hashes are summed as 256-bit numbers: each hash becomes bits once per row, and
  -- hash_sum_sql adds up its eight 32-bit lanes.
  IF v_first_commit AND v_layout = 2 THEN
    -- No stored hashes: hash every stored row once. unnest() keeps each row's hash one
    -- value (an inline expression would be computed once per lane) and, unlike OFFSET 0,
    -- lets parallel workers share the scan.
    EXECUTE format('SELECT count(*) FILTER (WHERE c._dv_count > 0), 0::bigint, 0::bigint, coalesce(sum(c._dv_count), 0), count(*), %s
                    FROM (SELECT CASE WHEN x._dv_gone THEN 0 ELSE 1 END::bigint AS _dv_count,
                                 unnest(ARRAY[(''x'' || encode(%s, ''hex''))::bit(256)]) AS _dv_hb
                          FROM ONLY dv_rows.%I x) c',
      dv_internal.hash_sum_sql('c._dv_hb', 'c._dv_count'), dv_internal.hash_sql('x', p_names, p_types), v_table)
      INTO v_added, v_removed, v_modified, v_rows, v_delta_rows, v_sum;
  ELSIF v_first_commit THEN
    EXECUTE format('SELECT %s, 0::bigint, 0::bigint, coalesce(sum(_dv_count), 0), count(*), %s
                    FROM (SELECT _dv_count, _dv_hash, (''x'' || encode(_dv_hash, ''hex''))::bit(256) AS _dv_hb FROM ONLY dv_rows.%I OFFSET 0) c',
      CASE WHEN v_keys IS NULL THEN 'coalesce(sum(_dv_count), 0)' ELSE 'count(*) FILTER (WHERE _dv_hash IS NOT NULL)' END,
      dv_internal.hash_sum_sql('_dv_hb', '_dv_count'), v_table)
      INTO v_added, v_removed, v_modified, v_rows, v_delta_rows, v_sum;
  ELSE
    EXECUTE format('SELECT %s, coalesce(sum(_dv_count - _dv_old_count), 0), count(*), (%s) - (%s)
                    FROM (SELECT c0._dv_count, c0._dv_old_count, c0._dv_hash, c0._dv_old_hash,
                                 (''x'' || encode(c0._dv_hash, ''hex''))::bit(256) AS _dv_hb,
                                 (''x'' || encode(c0._dv_old_hash, ''hex''))::bit(256) AS _dv_ohb
                          FROM %s c0 OFFSET 0) c',
      CASE WHEN v_keys IS NULL
        THEN 'coalesce(sum(greatest(_dv_count - _dv_old_count, 0)), 0), coalesce(sum(greatest(_dv_old_count - _dv_count, 0)), 0), 0::bigint'
        ELSE 'count(*) FILTER (WHERE _dv_old_hash IS NULL AND _dv_hash IS NOT NULL),
              count(*) FILTER (WHERE _dv_old_hash IS NOT NULL AND _dv_hash IS NULL),
              count(*) FILTER (WHERE _dv_old_hash IS NOT NULL AND _dv_hash IS NOT NULL)' END,
      dv_internal.hash_sum_sql('_dv_hb', '_dv_count'), dv_internal.hash_sum_sql('_dv_ohb', '_dv_old_count'), p_change)
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


CREATE OR REPLACE FUNCTION dv.commit(
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
--   apply    a change set (keyed datasets only): rows whose _dv_delete column is true
--            remove their key, the others are upserted; one version for a mixed change
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
  v_fast boolean;
  v_empty_delete boolean;
  v_change text := 'pg_temp.dv_commit_c';
  v_nullcond text;
  v_layout smallint;
  v_keyexpr text;
BEGIN
  SELECT d.kind INTO v_kind FROM dv.datasets d WHERE d.id = v_ds;
  v_keys := dv_internal.key_columns(v_ds);
  v_keyless := v_keys IS NULL;
  IF p_mode IS NULL OR p_mode NOT IN ('replace', 'append', 'upsert', 'delete', 'apply') THEN
    RAISE EXCEPTION 'commit mode "%" is not known', p_mode
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use replace, append, upsert, delete or apply';
  END IF;
  IF v_keyless AND p_mode IN ('upsert', 'apply') THEN
    RAISE EXCEPTION 'dataset "%" has no key, so mode % does not apply', p_dataset, p_mode
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
  -- A keyed delete names keys to remove: it adds no columns. Deleting from an empty
  -- version changes nothing (and must not give a new dataset its schema).
  IF p_mode = 'delete' AND NOT v_keyless AND cardinality(v_head_names) > 0 THEN
    v_names := v_head_names;
    v_types := v_head_types;
  END IF;
  v_empty_delete := p_mode = 'delete' AND NOT coalesce(p_force, false)
    AND (SELECT v.row_count FROM dv.versions v WHERE v.id = v_head) = 0;
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

  -- Layout 2 (migration 008): the key is the key column's value, not its hash.
  v_layout := dv_internal.settle_layout(v_ds, v_names, v_types);
  v_keyexpr := CASE
    WHEN v_keyless THEN 'NULL::bytea'
    WHEN v_layout = 2 THEN format('x.%I', v_keys[1])
    ELSE format('coalesce(x._dv_given_key, %s)',
      dv_internal.hash_sql('x', v_keys, (SELECT array_agg(v_types[array_position(v_names, k)]) FROM unnest(v_keys) k))) END;

  -- e: the staged rows cast to the dataset's types, with keys and row hashes.
  FOR v_i IN 1..cardinality(v_names) LOOP
    IF EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p_staging AND a.attname = v_names[v_i] AND a.attnum > 0 AND NOT a.attisdropped) THEN
      v_sel := v_sel || format('s.%I::%s AS %I', v_names[v_i], v_types[v_i], v_names[v_i]);
    ELSE
      v_sel := v_sel || format('NULL::%s AS %I', v_types[v_i], v_names[v_i]);
    END IF;
  END LOOP;
  -- A loader may fill _dv_hash (and, keyed, _dv_key) itself with the bytes src/rows
  -- computes, to hash in parallel with COPY; NULLs (and absent columns) are hashed here.
  v_sel := v_sel
    || CASE WHEN EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p_staging AND a.attname = '_dv_hash' AND a.atttypid = 'bytea'::regtype AND NOT a.attisdropped)
            THEN 's._dv_hash AS _dv_given_hash' ELSE 'NULL::bytea AS _dv_given_hash' END
    || CASE WHEN NOT v_keyless AND v_layout = 1 AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p_staging AND a.attname = '_dv_key' AND a.atttypid = 'bytea'::regtype AND NOT a.attisdropped)
            THEN 's._dv_key AS _dv_given_key' ELSE 'NULL::bytea AS _dv_given_key' END;
  -- Mode apply: a true _dv_delete (any type that casts to boolean; NULL = false) makes the
  -- staged row a deletion of its key.
  IF p_mode = 'apply' AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p_staging AND a.attname = '_dv_delete' AND a.attnum > 0 AND NOT a.attisdropped) THEN
    v_sel := v_sel || 'coalesce(s._dv_delete::text::boolean, false) AS _dv_given_delete'::text;
  ELSE
    v_sel := v_sel || 'false AS _dv_given_delete'::text;
  END IF;
  -- The first commit of a keyed dataset: every staged row is new. The rows go from the
  -- staging table into the version's table in one pass, hashed on the way, instead of
  -- through two temporary copies; the table's unique index catches repeated keys.
  v_fast := NOT v_keyless AND cardinality(v_old_names) = 0 AND p_mode NOT IN ('delete', 'apply');
  IF v_empty_delete THEN
    v_n := 0;
    v_names := v_head_names;
    v_types := v_head_types;
  ELSIF v_fast AND v_layout = 2 THEN
    -- The version table's NOT NULL key column catches NULL keys (make_version names
    -- them); a first commit always makes a version, so the rows need no count here.
    v_n := 1;
    v_change := format('(SELECT %s, %s AS _dv_key, NULL::bytea AS _dv_hash, 1::bigint AS _dv_count FROM (SELECT %s FROM %s s) x)',
      (SELECT string_agg(format('x.%I', n), ', ') FROM unnest(v_names) n), v_keyexpr, array_to_string(v_sel, ', '), p_staging);
  ELSIF v_fast THEN
    v_keyobj := (SELECT format('jsonb_build_object(%s)', string_agg(format('%L, %I', k, k), ', ')) FROM unnest(v_keys) k);
    v_nullcond := (SELECT string_agg(format('%I IS NULL', k), ' OR ') FROM unnest(v_keys) k);
    EXECUTE format('SELECT count(*), count(*) FILTER (WHERE %s), (min(%s::text) FILTER (WHERE %s))::jsonb FROM (SELECT %s FROM %s s) x',
      v_nullcond, v_keyobj, v_nullcond, array_to_string(v_sel, ', '), p_staging) INTO v_n, v_i, v_bad;
    IF v_i > 0 THEN
      RAISE EXCEPTION '% staged row(s) for dataset "%" have a NULL key column, e.g. %', v_i, p_dataset, v_bad
        USING ERRCODE = 'not_null_violation', HINT = format('Key columns %s must be set in every row', array_to_string(v_keys, ', '));
    END IF;
    v_change := format('(SELECT %s, %s AS _dv_key, coalesce(x._dv_given_hash, %s) AS _dv_hash, 1::bigint AS _dv_count FROM (SELECT %s FROM %s s) x)',
      (SELECT string_agg(format('x.%I', n), ', ') FROM unnest(v_names) n), v_keyexpr,
      dv_internal.hash_sql('x', v_names, v_types), array_to_string(v_sel, ', '), p_staging);
  ELSE
    DROP TABLE IF EXISTS pg_temp.dv_commit_e;
    DROP TABLE IF EXISTS pg_temp.dv_commit_c;
    -- A deletion (mode apply) is staged as a tombstone: no row hash, count 0.
    EXECUTE format('CREATE TEMP TABLE dv_commit_e ON COMMIT DROP AS SELECT %s, %s AS _dv_key,
                      CASE WHEN NOT x._dv_given_delete THEN coalesce(x._dv_given_hash, %s) END AS _dv_hash,
                      CASE WHEN x._dv_given_delete THEN 0 ELSE 1 END::bigint AS _dv_count
                    FROM (SELECT %s FROM %s s) x',
      (SELECT string_agg(format('x.%I', n), ', ') FROM unnest(v_names) n), v_keyexpr,
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
      ELSIF p_mode = 'apply' THEN
        v_csel := v_csel || format('CASE WHEN e._dv_hash IS NOT NULL THEN e.%1$I END AS %1$I', v_names[v_i]);
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
      ELSIF p_mode = 'apply' THEN
        -- Upserts that change a row, and deletions of keys that exist.
        v_from := format('pg_temp.dv_commit_e e LEFT JOIN (%s) o ON o._dv_key = e._dv_key', v_old);
        v_where := 'CASE WHEN e._dv_hash IS NULL THEN o._dv_key IS NOT NULL ELSE o._dv_key IS NULL OR o._dv_hash IS DISTINCT FROM e._dv_hash END';
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
    IF cardinality(v_old_names) = 0 AND p_mode NOT IN ('delete', 'apply') THEN
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
  END IF;

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

  SELECT * INTO v_res FROM dv_internal.make_version(v_ds, ARRAY[v_head], v_names, v_types, v_change,
    p_message, p_metadata, p_branch, format('commit (%s)', p_mode));
  IF p_tag IS NOT NULL THEN
    PERFORM dv.tag_create(p_dataset, p_tag, v_res.version_id::text);
  END IF;
  DROP TABLE IF EXISTS pg_temp.dv_commit_e;
  DROP TABLE IF EXISTS pg_temp.dv_commit_c;
  IF v_registered THEN
    EXECUTE 'DELETE FROM pg_temp.dv_staging_registry WHERE relid = $1' USING p_staging::oid;
    EXECUTE format('DROP TABLE %s', p_staging);
  END IF;
  RETURN QUERY SELECT v_res.version_id, v_head, p_branch, true, v_res.added, v_res.removed, v_res.modified, v_res.row_count, v_res.content_hash;
END
$$;



-- ---------------------------------------------------------------------------
-- Verify
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION dv.verify(p_dataset text, p_ref text DEFAULT 'main')
RETURNS TABLE (version_id bigint, row_count bigint, bad_rows bigint, first_bad jsonb,
               content_hash text, computed_hash text, ok boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET "DateStyle" = 'ISO, MDY'
SET "TimeZone" = 'UTC'
SET "IntervalStyle" = 'postgres'
SET extra_float_digits = 1
AS $$
-- Reads the version whole and recomputes, from the stored values, every row's hash and
-- the version's content hash. Layout 1 also stores each row's hash and key hash: a row
-- whose stored hashes differ from its values (a table edited behind pgdv's back, a
-- damaged page) is counted and the first one's key named. Layout 2 stores values only,
-- so a change shows as a content hash that no longer matches (bad_rows is NULL: no row
-- can be singled out). ok only if nothing is bad and the content hash and row count
-- match what the commit recorded. Costs one full read plus the hashing of every row.
DECLARE
  v_id bigint := dv.resolve_ref(p_dataset, p_ref);
  v_ds bigint := dv_internal.dataset_id(p_dataset);
  v_keys text[] := dv_internal.key_columns(v_ds);
  v_v dv.versions;
  v_names text[];
  v_types text[];
  v_rowhash text;
  v_keyhash text;
  v_keyobj text;
  v_n bigint := 0;
  v_rows bigint := 0;
  v_bad bigint := 0;
  v_first jsonb;
  v_sum numeric := 0;
BEGIN
  SELECT * INTO v_v FROM dv.versions v WHERE v.id = v_id;
  SELECT array_agg(c.column_name ORDER BY c.ordinal), array_agg(c.data_type ORDER BY c.ordinal)
    INTO v_names, v_types FROM dv_internal.version_cols(v_id) c;
  IF v_names IS NOT NULL AND dv_internal.row_layout(v_ds) = 2 THEN
    v_bad := NULL;
    EXECUTE format('SELECT count(*), coalesce(sum(y._dv_count), 0), %s
                    FROM (SELECT r._dv_count, unnest(ARRAY[(''x'' || encode(%s, ''hex''))::bit(256)]) AS hb FROM (%s) r) y',
      dv_internal.hash_sum_sql('y.hb', 'y._dv_count'), dv_internal.hash_sql('r', v_names, v_types),
      dv_internal.entries_sql(v_id, NULL, NULL, NULL, false))
      INTO v_n, v_rows, v_sum;
  ELSIF v_names IS NOT NULL THEN
    v_rowhash := dv_internal.hash_sql('r', v_names, v_types);
    IF v_keys IS NULL THEN
      -- Keyless: the key is the row hash, and the row itself names a bad entry.
      v_keyhash := v_rowhash;
      v_keyobj := format('to_jsonb(r) - %L - %L - %L', '_dv_key', '_dv_hash', '_dv_count');
    ELSE
      v_keyhash := dv_internal.hash_sql('r', v_keys, (SELECT array_agg(v_types[array_position(v_names, k)]) FROM unnest(v_keys) k));
      v_keyobj := (SELECT format('jsonb_build_object(%s)', string_agg(format('%L, r.%I', k, k), ', ')) FROM unnest(v_keys) k);
    END IF;
    EXECUTE format('SELECT count(*), coalesce(sum(y._dv_count), 0), count(*) FILTER (WHERE y.bad), (min(y.k::text) FILTER (WHERE y.bad))::jsonb, %s
                    FROM (SELECT z._dv_count, z.k, z.h IS DISTINCT FROM z._dv_hash OR z.kh IS DISTINCT FROM z._dv_key AS bad,
                                 (''x'' || encode(z.h, ''hex''))::bit(256) AS hb
                          FROM (SELECT r._dv_count, r._dv_hash, r._dv_key, %s AS h, %s AS kh, %s AS k FROM (%s) r OFFSET 0) z) y',
      dv_internal.hash_sum_sql('y.hb', 'y._dv_count'), v_rowhash, v_keyhash, v_keyobj, dv_internal.read_sql(v_id))
      INTO v_n, v_rows, v_bad, v_first, v_sum;
  END IF;
  version_id := v_id;
  row_count := v_rows;
  bad_rows := v_bad;
  first_bad := v_first;
  content_hash := v_v.content_hash;
  computed_hash := dv_internal.content_hash(v_sum, v_rows);
  ok := coalesce(v_bad, 0) = 0 AND computed_hash = v_v.content_hash AND v_rows = v_v.row_count;
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION dv.verify(text, text) IS 'Recomputes every row hash (layout 1: and key hash) and the content hash of a version from its stored values and compares them with what was committed; ok = all match; bad_rows and first_bad name tampered rows where the layout stores row hashes (else NULL). One full read.
Example: SELECT * FROM dv.verify(''flights'', ''v1.0'');';

-- Diffs and merges now hash layout-2 rows as they read them; the encoding needs the
-- same settings dv.commit hashes under.
ALTER FUNCTION dv.diff(text, text, text, boolean) SET "DateStyle" = 'ISO, MDY' SET "TimeZone" = 'UTC' SET "IntervalStyle" = 'postgres' SET extra_float_digits = 1;
ALTER FUNCTION dv.diff_summary(text, text, text) SET "DateStyle" = 'ISO, MDY' SET "TimeZone" = 'UTC' SET "IntervalStyle" = 'postgres' SET extra_float_digits = 1;
ALTER FUNCTION dv.merge(text, text, text, text, text) SET "DateStyle" = 'ISO, MDY' SET "TimeZone" = 'UTC' SET "IntervalStyle" = 'postgres' SET extra_float_digits = 1;

REVOKE EXECUTE ON FUNCTION
  dv_internal.row_layout(bigint), dv_internal.key_type(bigint), dv_internal.entry_sql(bigint, bigint, text[], text[], boolean),
  dv_internal.entries_sql(bigint, text, bigint, bigint, boolean), dv_internal.settle_layout(bigint, text[], text[])
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  dv_internal.row_layout(bigint), dv_internal.key_type(bigint), dv_internal.entry_sql(bigint, bigint, text[], text[], boolean),
  dv_internal.entries_sql(bigint, text, bigint, bigint, boolean)
TO pgdv_reader;
GRANT EXECUTE ON FUNCTION dv_internal.settle_layout(bigint, text[], text[]) TO pgdv_writer;
