-- 009 entry ordinals: a whole read of a layout-2 version scans its chain's tables and
-- skips superseded entries by a bitmap, instead of resolving keys across the chain.
--
-- Before this migration a whole read of a version at chain depth d resolved the newest
-- entry per key among the d newer levels (a sort or a merge of their key indexes) and
-- anti-joined the base against every newer key. At 5M rows and 20 levels of 1% changes
-- that cost 2.4 to 3.4 times a plain table's read, and no join strategy PostgreSQL has
-- does much better: the anti-join alone, hashed, costs more than the plain scan.
--
-- Datasets whose first commit comes after this migration and get row layout 2 also get
-- entry ordinals (dv.datasets.row_ordinals):
--   * every entry of a version table has an ordinal _dv_n (integer), unique along the
--     first-parent chain it is read in: a base or checkpoint numbers its rows from 0, a
--     delta continues after its parent's last (dv.version_tables.ord_start / ord_end);
--   * each later commit records which of its parent's live entries its delta supersedes
--     (an updated, deleted or re-added key), as a bit string over the parent chain's
--     ordinals (dv_internal.version_dead: the chain root it counts from, the bits);
--   * a version's dead entries are the OR of those increments down to its chain root
--     (dv_internal.dead_bits), one bit per entry: about 0.7 MB at 5.5M entries;
--   * a whole read is then a UNION ALL of the chain's tables, each filtered by
--     get_bit(dead, _dv_n) = 0 and its tombstone flag. No join, no sort;
--   * a read restricted to many keys (a commit's, a diff's) finds the newer levels'
--     live entries in one pass and fetches only those; a commit's read of its head
--     also returns their ordinals, which become its increment;
--   * a diff across many changes reads each side by bits (dv_internal.diff_sql).
-- Reads of few keys (point lookups, small commits and diffs) keep probing key indexes.
-- A version whose chain lacks an increment (a checkpoint made on demand below existing
-- versions, ordinals past 2^30) is read the old way; so is every dataset committed
-- before this migration.
--
-- Also: version tables never change after their commit, so their key indexes are built
-- with fillfactor 100 (a B-tree's default 90 leaves room for inserts that never come).

ALTER TABLE dv.datasets ADD COLUMN row_ordinals boolean NOT NULL DEFAULT false;
COMMENT ON COLUMN dv.datasets.row_ordinals IS 'Whether version tables number their entries (_dv_n) and commits record superseded entries as bits, so whole reads skip them without joins (migration 009). Set at the first commit for row layout 2.';

ALTER TABLE dv.version_tables ADD COLUMN ord_start bigint, ADD COLUMN ord_end bigint;
COMMENT ON COLUMN dv.version_tables.ord_start IS 'First entry ordinal (_dv_n) of the delta table; NULL when the dataset has no ordinals.';
COMMENT ON COLUMN dv.version_tables.ord_end IS 'One past the last entry ordinal of the delta table: the length of the chain''s ordinal range up to this version.';

CREATE TABLE dv_internal.version_dead (
  version_id bigint PRIMARY KEY REFERENCES dv.versions (id) ON DELETE CASCADE,
  root_id bigint NOT NULL REFERENCES dv.versions (id) ON DELETE CASCADE,
  bits varbit NOT NULL
);
COMMENT ON TABLE dv_internal.version_dead IS 'Per commit of a dataset with entry ordinals: the entries of its first parent''s chain (rooted at root_id''s base or checkpoint table) that its delta supersedes, bit n for ordinal n.';
REVOKE ALL ON dv_internal.version_dead FROM PUBLIC;

-- ---------------------------------------------------------------------------
-- Dead-entry bitmaps
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv_internal.bits_root(p_version bigint)
RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  -- The version whose table roots p_version's chain when every newer level of that chain
  -- has its superseded-entry increment counted from that root; else NULL (read by joins).
  -- SECURITY DEFINER: readers may not read dv_internal.version_dead.
  WITH c AS (SELECT * FROM dv_internal.chain(p_version)),
       r AS (SELECT c.version_id FROM c ORDER BY c.lvl DESC LIMIT 1)
  SELECT r.version_id FROM r
  WHERE (SELECT d.row_ordinals FROM dv.datasets d JOIN dv.versions v ON v.dataset_id = d.id WHERE v.id = p_version)
    AND NOT EXISTS (SELECT 1 FROM c WHERE c.version_id <> r.version_id
                      AND NOT EXISTS (SELECT 1 FROM dv_internal.version_dead d WHERE d.version_id = c.version_id AND d.root_id = r.version_id))
$$;
COMMENT ON FUNCTION dv_internal.bits_root(bigint) IS 'The root version of a version''s chain when the chain''s dead-entry bits are complete, else NULL.';

CREATE FUNCTION dv_internal.dead_bits(p_version bigint, p_root bigint)
RETURNS varbit
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- The entries of p_version's chain down to p_root's table that p_version does not show
-- (superseded by a newer level): the OR of the increments of the versions above p_root
-- on the first-parent path, bit n for ordinal n, padded to a whole number of bytes past
-- the chain's last ordinal. Both arguments are fixed when a read's SQL is generated
-- (views keep it), and the increments never change, so neither does the result.
-- SECURITY DEFINER: readers of a tag view may not read dv_internal.version_dead.
DECLARE
  v_len bigint;
  v_zero varbit := B'00000000';
  v_bm varbit;
  v_id bigint := p_version;
  v_d dv_internal.version_dead;
BEGIN
  SELECT ((t.ord_end + 7) / 8) * 8 INTO v_len FROM dv.version_tables t WHERE t.version_id = p_version;
  IF v_len IS NULL THEN
    RAISE EXCEPTION 'version % has no entry ordinals', p_version USING ERRCODE = 'internal_error';
  END IF;
  WHILE length(v_zero) < v_len LOOP
    v_zero := v_zero || v_zero;
  END LOOP;
  v_bm := substring(v_zero FROM 1 FOR v_len::int);
  WHILE v_id IS DISTINCT FROM p_root LOOP
    SELECT * INTO v_d FROM dv_internal.version_dead d WHERE d.version_id = v_id;
    IF NOT FOUND OR v_d.root_id <> p_root OR v_id IS NULL THEN
      RAISE EXCEPTION 'version % has no dead-entry bits counted from version %', coalesce(v_id::text, 'NULL'), p_root
        USING ERRCODE = 'internal_error', HINT = 'Run SELECT dv.checkpoint(...) on the version to read it from a full copy';
    END IF;
    -- Every length is a whole number of bytes, so the concatenation copies bytes.
    v_bm := v_bm | (v_d.bits || substring(v_zero FROM 1 FOR (v_len - length(v_d.bits))::int));
    SELECT v.parent_id INTO v_id FROM dv.versions v WHERE v.id = v_id;
  END LOOP;
  RETURN v_bm;
END
$$;
COMMENT ON FUNCTION dv_internal.dead_bits(bigint, bigint) IS 'Bit n set when the entry with ordinal n on a version''s chain (down to the root version''s table) is superseded in that version. Example: SELECT length(dv_internal.dead_bits(42, 30))';

CREATE FUNCTION dv_internal.bits_of(p_ordinals text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- SQL turning a query of ordinals (one column, distinct values, any order) into a bit
  -- string with those bits set, as long as the highest byte it touches: hex digits two
  -- per byte, zero bytes between the ones set.
  SELECT format($f$SELECT ('x' || coalesce(string_agg(repeat('00', (b.byte - b.prev - 1)::int) || lpad(to_hex(b.v), 2, '0'), '' ORDER BY b.byte), ''))::varbit
                   FROM (SELECT g.byte, g.v, lag(g.byte, 1, -1::bigint) OVER (ORDER BY g.byte) AS prev
                         FROM (SELECT o.n::bigint / 8 AS byte, bit_or(1 << (7 - (o.n::bigint %% 8)::int)) AS v FROM (%s) o(n) GROUP BY 1) g) b$f$,
                p_ordinals)
$$;
COMMENT ON FUNCTION dv_internal.bits_of(text) IS 'SQL building a bit string from a query of ordinals (bit n set for each n).';

-- ---------------------------------------------------------------------------
-- Whole reads by bitmap
-- ---------------------------------------------------------------------------

ALTER FUNCTION dv_internal.entries_sql(bigint, text, bigint, bigint, boolean) RENAME TO entries_join_sql;
COMMENT ON FUNCTION dv_internal.entries_join_sql(bigint, text, bigint, bigint, boolean) IS 'SQL of a version''s live entries resolved by key across its chain (anti-join and DISTINCT ON, or restricted per-key probes); see dv_internal.entries_sql. Example: SELECT dv_internal.entries_join_sql(42, NULL, NULL, NULL, false)';

CREATE FUNCTION dv_internal.entries_sql(p_version bigint, p_restrict text, p_cols_of bigint, p_restrict_rows bigint, p_hashes boolean,
                                        p_ordinals boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- A SELECT of a version's live entries (user columns of p_cols_of, default its own, then
-- _dv_key, _dv_hash, _dv_count, and with p_ordinals _dv_n), all of them or those whose
-- key is in p_restrict (a relation with a _dv_key column; p_restrict_rows estimates its
-- size). With complete dead-entry bits:
--   * a whole read scans each table of the chain once and keeps the entries whose bit
--     is clear;
--   * a restricted read of many keys finds the live entries of the newer levels in one
--     pass over them, probing one hash of the wanted keys (a level per key would build
--     that hash once per level), then fetches just those rows by their key index, so
--     row hashes are computed for them only; the root is probed per wanted key, or
--     with more than 1/32 of its rows wanted, read once and hash-joined to them;
--   * a restricted read of few keys probes every table of the chain per key and keeps
--     the entry whose bit is clear (only for p_ordinals: otherwise entries_join_sql's
--     probes do the same without the bitmap).
-- p_ordinals (a commit, to record which entries its delta supersedes) adds each entry's
-- _dv_n: NULL where the bits are incomplete. Anything else resolves keys by joins in
-- dv_internal.entries_join_sql.
DECLARE
  v_ds bigint;
  v_root bigint := dv_internal.bits_root(p_version);
  v_names text[];
  v_types text[];
  v_parts text[];
  v_key text;
  v_new_rows real;
  v_root_rows real;
  v_levels int;
  v_scan text;
  v_root_rel name;
  v_n text := CASE WHEN p_ordinals THEN ', x._dv_n' ELSE '' END;
  v_with text;
BEGIN
  IF v_root IS NULL OR (v_root = p_version AND NOT p_ordinals) THEN
    IF p_ordinals THEN
      RETURN format('SELECT dv_j.*, NULL::integer AS _dv_n FROM (%s) dv_j',
        dv_internal.entries_join_sql(p_version, p_restrict, p_cols_of, p_restrict_rows, p_hashes));
    END IF;
    RETURN dv_internal.entries_join_sql(p_version, p_restrict, p_cols_of, p_restrict_rows, p_hashes);
  END IF;
  v_ds := (SELECT v.dataset_id FROM dv.versions v WHERE v.id = p_version);
  SELECT coalesce(array_agg(c.column_name ORDER BY c.ordinal), '{}'), coalesce(array_agg(c.data_type ORDER BY c.ordinal), '{}')
    INTO v_names, v_types FROM dv_internal.version_cols(coalesce(p_cols_of, p_version)) c;
  v_with := format('dv_bm AS MATERIALIZED (SELECT dv_internal.dead_bits(%s, %s) AS bm)', p_version, v_root);
  IF p_restrict IS NULL THEN
    -- The bitmap is computed once (the CTE) and read by each branch as an InitPlan.
    SELECT array_agg(format('SELECT %s%s FROM ONLY dv_rows.%I x WHERE x._dv_gone IS NULL AND get_bit((SELECT dv_bm.bm FROM dv_bm), x._dv_n) = 0',
                            dv_internal.entry_sql(v_ds, c.version_id, v_names, v_types, p_hashes), v_n, c.rel) ORDER BY c.lvl DESC)
      INTO v_parts FROM dv_internal.chain(p_version) c;
    -- Wrapped so that callers may put it after UNION ALL.
    RETURN format('SELECT * FROM (WITH %s SELECT * FROM (%s) dv_r0) dv_r', v_with, array_to_string(v_parts, ' UNION ALL '));
  END IF;

  -- Restricted: by bits when many keys are wanted of the newer levels (the measure
  -- entries_join_sql uses to stop probing them per key), or when ordinals are wanted.
  SELECT count(*), coalesce(sum(greatest(pc.reltuples, 0)), 0) INTO v_levels, v_new_rows
  FROM dv_internal.chain(p_version) c JOIN pg_class pc ON pc.oid = format('dv_rows.%I', c.rel)::regclass WHERE c.version_id <> v_root;
  v_key := (dv_internal.key_columns(v_ds))[1];
  IF p_restrict_rows IS NULL OR p_restrict_rows::real * v_levels * 16 <= v_new_rows THEN
    IF NOT p_ordinals THEN
      RETURN dv_internal.entries_join_sql(p_version, p_restrict, p_cols_of, p_restrict_rows, p_hashes);
    END IF;
    -- Few keys: each table of the chain probed per key; the live entry has a clear bit.
    SELECT array_agg(format('SELECT %s%s FROM %s dv_rr CROSS JOIN LATERAL (SELECT * FROM ONLY dv_rows.%I y WHERE y.%I = dv_rr._dv_key OFFSET 0) x WHERE x._dv_gone IS NULL AND get_bit((SELECT dv_bm.bm FROM dv_bm), x._dv_n) = 0',
                            dv_internal.entry_sql(v_ds, c.version_id, v_names, v_types, p_hashes), v_n, p_restrict, c.rel, v_key) ORDER BY c.lvl)
      INTO v_parts FROM dv_internal.chain(p_version) c;
    RETURN format('SELECT * FROM (WITH %s SELECT * FROM (%s) dv_r0) dv_r', v_with, array_to_string(v_parts, ' UNION ALL '));
  END IF;
  SELECT c.rel INTO v_root_rel FROM dv_internal.chain(p_version) c WHERE c.version_id = v_root;
  SELECT greatest(pc.reltuples, 0) INTO v_root_rows FROM pg_class pc WHERE pc.oid = format('dv_rows.%I', v_root_rel)::regclass;
  -- dv_m: (level, key) of each wanted key's live entry in the newer levels.
  SELECT string_agg(format('SELECT %s AS lvl, x.%I AS k, x._dv_n AS n FROM ONLY dv_rows.%I x WHERE x._dv_gone IS NULL', c.lvl, v_key, c.rel), ' UNION ALL '),
         array_agg(format('SELECT %s%s FROM dv_m JOIN ONLY dv_rows.%I x ON x.%I = dv_m.k WHERE dv_m.lvl = %s',
                          dv_internal.entry_sql(v_ds, c.version_id, v_names, v_types, p_hashes), v_n, c.rel, v_key, c.lvl) ORDER BY c.lvl)
    INTO v_scan, v_parts FROM dv_internal.chain(p_version) c WHERE c.version_id <> v_root;
  IF v_scan IS NOT NULL THEN
    v_with := v_with || format(', dv_m AS MATERIALIZED (SELECT u.lvl, u.k FROM (%s) u WHERE get_bit((SELECT dv_bm.bm FROM dv_bm), u.n) = 0 AND u.k IN (SELECT dv_rr._dv_key FROM %s dv_rr))',
      v_scan, p_restrict);
  END IF;
  -- The root's live entries among the wanted keys (a root holds no tombstones).
  IF p_restrict_rows::real * 32 > coalesce(v_root_rows, 0) THEN
    v_parts := coalesce(v_parts, '{}') || format('SELECT %s%s FROM (SELECT * FROM ONLY dv_rows.%I OFFSET 0) x JOIN %s dv_rr ON dv_rr._dv_key = x.%I WHERE get_bit((SELECT dv_bm.bm FROM dv_bm), x._dv_n) = 0',
      dv_internal.entry_sql(v_ds, v_root, v_names, v_types, p_hashes), v_n, v_root_rel, p_restrict, v_key);
  ELSE
    v_parts := coalesce(v_parts, '{}') || format('SELECT %s%s FROM %s dv_rr CROSS JOIN LATERAL (SELECT * FROM ONLY dv_rows.%I y WHERE y.%I = dv_rr._dv_key OFFSET 0) x WHERE get_bit((SELECT dv_bm.bm FROM dv_bm), x._dv_n) = 0',
      dv_internal.entry_sql(v_ds, v_root, v_names, v_types, p_hashes), v_n, p_restrict, v_root_rel, v_key);
  END IF;
  RETURN format('SELECT * FROM (WITH %s SELECT * FROM (%s) dv_r0) dv_r', v_with, array_to_string(v_parts, ' UNION ALL '));
END
$$;
COMMENT ON FUNCTION dv_internal.entries_sql(bigint, text, bigint, bigint, boolean, boolean) IS 'SQL of a version''s live entries (user columns + _dv_key, _dv_hash, _dv_count, with p_ordinals _dv_n), optionally restricted to the keys of a relation; with entry ordinals, whole reads and restricted reads of many keys skip superseded entries by bitmap. Example: SELECT dv_internal.entries_sql(42, NULL, NULL, NULL, false)';

CREATE OR REPLACE FUNCTION dv_internal.rows_sql(p_version bigint)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The user columns only: no row hashes are computed for a plain read. With complete
-- dead-entry bits the SELECT is a bare UNION ALL of the chain's tables, each filtered by
-- its bit: no per-row system columns are computed, no subquery levels project them away
-- (on 5M rows at depth 20 that is 1.3-1.45x a plain table's read, against 1.6x through
-- dv_internal.entries_sql's general shape).
DECLARE
  v_ds bigint;
  v_cols text;
  v_keyless boolean;
  v_root bigint := dv_internal.bits_root(p_version);
  v_names text[];
  v_types text[];
  v_parts text[];
BEGIN
  SELECT v.dataset_id INTO v_ds FROM dv.versions v WHERE v.id = p_version;
  IF v_root IS NOT NULL AND v_root <> p_version THEN
    SELECT array_agg(c.column_name ORDER BY c.ordinal), array_agg(c.data_type ORDER BY c.ordinal)
      INTO v_names, v_types FROM dv_internal.version_cols(p_version) c;
    SELECT array_agg(format('SELECT %s FROM ONLY dv_rows.%I x WHERE %sget_bit((SELECT dv_bm.bm FROM dv_bm), x._dv_n) = 0',
                            (SELECT string_agg(CASE WHEN EXISTS (SELECT 1 FROM dv_internal.version_cols(c.version_id) lc WHERE lc.column_name = u.n)
                                                    THEN format('x.%I', u.n) ELSE format('NULL::%s AS %I', v_types[u.o], u.n) END, ', ' ORDER BY u.o)
                             FROM unnest(v_names) WITH ORDINALITY AS u(n, o)),
                            c.rel,
                            CASE WHEN c.version_id = v_root THEN '' ELSE 'x._dv_gone IS NULL AND ' END)  -- a root holds no tombstones
                     ORDER BY c.lvl DESC)
      INTO v_parts FROM dv_internal.chain(p_version) c;
    RETURN format('WITH dv_bm AS MATERIALIZED (SELECT dv_internal.dead_bits(%s, %s) AS bm) %s',
      p_version, v_root, array_to_string(v_parts, ' UNION ALL '));
  END IF;
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

-- ---------------------------------------------------------------------------
-- The layout and ordinals are chosen at the first commit
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION dv_internal.settle_layout(p_ds bigint, p_names text[], p_types text[])
RETURNS smallint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- The dataset's layout; at its first commit (none recorded yet) chosen from the schema
-- being committed and recorded, with entry ordinals for layout 2. Only that first time
-- is the dataset's row locked: a lock on every commit would make commits to different
-- branches wait for each other.
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
  UPDATE dv.datasets d SET row_layout = v_layout, row_ordinals = (v_layout = 2) WHERE d.id = p_ds;
  RETURN v_layout;
END
$$;

-- ---------------------------------------------------------------------------
-- Commits number their entries and record what they supersede
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
-- Entry ordinals (migration 009): each stored entry gets _dv_n, counting on from the
-- first parent's chain, and a later commit records the parent's live entries its delta
-- supersedes in dv_internal.version_dead. Key indexes are built with fillfactor 100: a
-- version table never changes after its commit.
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
  v_ordinals boolean;
  v_ord0 bigint;
  v_ord_end bigint;
  v_root bigint;
  v_inc varbit;
  v_levels text;
BEGIN
  SELECT * INTO v_pv FROM dv.versions v WHERE v.id = v_first;
  SELECT * INTO v_pt FROM dv.version_tables t WHERE t.version_id = v_first;
  v_first_commit := v_pt.version_id IS NULL;  -- the first parent is a dataset's empty root
  v_layout := dv_internal.settle_layout(p_ds, p_names, p_types);
  v_key := CASE WHEN v_layout = 2 THEN v_keys[1] END;
  v_ordinals := v_layout = 2 AND (SELECT d.row_ordinals FROM dv.datasets d WHERE d.id = p_ds);
  -- Ordinals continue the first parent's chain: after its delta's, or after its
  -- checkpoint's rows (numbered from 0) when it has one. NULL: this delta has none.
  v_ord0 := CASE WHEN NOT v_ordinals THEN NULL
                 WHEN v_first_commit THEN 0
                 WHEN v_pt.checkpoint_table IS NOT NULL THEN v_pv.row_count
                 ELSE v_pt.ord_end END;

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
  IF cardinality(v_inherit) = 0 AND v_ordinals THEN
    v_extra := v_extra || ARRAY['_dv_gone boolean', '_dv_n integer'];
  ELSIF cardinality(v_inherit) = 0 AND v_layout = 2 THEN
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
      IF v_ordinals THEN
        -- Entries are numbered in the order they are stored; past 2^30 they get none
        -- (and this version is read by joins).
        EXECUTE format('INSERT INTO dv_rows.%I (%s, _dv_gone, _dv_n) SELECT %s, CASE WHEN dv_c._dv_count = 0 THEN true END, CASE WHEN dv_c._dv_ord < 1073741824 THEN dv_c._dv_ord::int END
                        FROM (SELECT dv_c0.*, %s + row_number() OVER (%s) - 1 AS _dv_ord FROM %s dv_c0) dv_c%s',
          v_table, v_cols, v_ins, v_ord0, CASE WHEN v_first_commit THEN '' ELSE 'ORDER BY dv_c0._dv_key' END, p_change,
          CASE WHEN v_first_commit THEN '' ELSE ' ORDER BY dv_c._dv_key' END);
      ELSE
        EXECUTE format('INSERT INTO dv_rows.%I (%s, _dv_gone) SELECT %s, CASE WHEN dv_c._dv_count = 0 THEN true END FROM %s dv_c%s',
          v_table, v_cols, v_ins, p_change, CASE WHEN v_first_commit THEN '' ELSE ' ORDER BY dv_c._dv_key' END);
      END IF;
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
  v_ord_end := v_ord0 + v_delta_rows;
  IF v_ord_end > 1073741824 THEN
    v_ord0 := NULL;
    v_ord_end := NULL;
  END IF;
  BEGIN
    EXECUTE format('CREATE UNIQUE INDEX ON dv_rows.%I (%I) WITH (fillfactor = 100)', v_table, coalesce(v_key, '_dv_key'));
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
  -- The parent's live entries this delta supersedes (its keys, changed or deleted), as
  -- bits over the parent chain's ordinals: per key of the delta, the newest entry on the
  -- parent's chain, unless a tombstone. The newer levels (small) are scanned once and
  -- probe one hash of the delta's keys; the chain's root (a base or checkpoint) is
  -- probed through its key index, once per key. Only when the parent's own bits are
  -- complete (dv_internal.bits_root): else this version is read by joins like its parent.
  IF v_ord0 IS NOT NULL AND NOT v_first_commit THEN
    v_root := dv_internal.bits_root(v_first);
    IF v_root IS NOT NULL AND left(p_change, 1) <> '('
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = to_regclass(p_change) AND a.attname = '_dv_old_n' AND NOT a.attisdropped) THEN
      -- dv.commit read the parent's entries with their ordinals already (_dv_old_n).
      EXECUTE format('SELECT count(*) FROM %s c WHERE c._dv_old_n IS NULL AND c._dv_old_count > 0', p_change) INTO v_dups;
      IF v_dups = 0 THEN
        EXECUTE dv_internal.bits_of(format('SELECT c._dv_old_n FROM %s c WHERE c._dv_old_n IS NOT NULL', p_change)) INTO v_inc;
        INSERT INTO dv_internal.version_dead (version_id, root_id, bits) VALUES (v_id, v_root, v_inc);
        v_root := NULL;  -- done
      END IF;
    END IF;
    IF v_root IS NOT NULL THEN
      SELECT string_agg(format('SELECT %s AS lvl, x.%I AS k, x._dv_n AS n, x._dv_gone AS gone FROM ONLY dv_rows.%I x', c.lvl, v_key, c.rel), ' UNION ALL ')
        INTO v_levels FROM dv_internal.chain(v_first) c WHERE c.version_id <> v_root;
      v_levels := format('SELECT %s AS lvl, x.%I AS k, x._dv_n AS n, x._dv_gone AS gone FROM ONLY dv_rows.%I y CROSS JOIN LATERAL (SELECT * FROM ONLY dv_rows.%I x WHERE x.%I = y.%I OFFSET 0) x',
          (SELECT c.lvl FROM dv_internal.chain(v_first) c WHERE c.version_id = v_root), v_key, v_table,
          (SELECT c.rel FROM dv_internal.chain(v_first) c WHERE c.version_id = v_root), v_key, v_key)
        || CASE WHEN v_levels IS NULL THEN ''
                ELSE format(' UNION ALL SELECT w.* FROM (%s) w WHERE w.k IN (SELECT y.%I FROM ONLY dv_rows.%I y)', v_levels, v_key, v_table) END;
      EXECUTE dv_internal.bits_of(format('SELECT e.n FROM (SELECT DISTINCT ON (u.k) u.n, u.gone FROM (%s) u ORDER BY u.k, u.lvl) e WHERE e.gone IS NULL', v_levels))
        INTO v_inc;
      INSERT INTO dv_internal.version_dead (version_id, root_id, bits) VALUES (v_id, v_root, v_inc);
    END IF;
  END IF;

  v_rows := v_pv.row_count + v_rows;
  v_sum := coalesce(v_pt.hash_sum, 0) + v_sum;
  v_sum := ((v_sum % (2::numeric ^ 256)) + 2::numeric ^ 256) % (2::numeric ^ 256);
  v_hash := dv_internal.content_hash(v_sum, v_rows);
  v_depth := coalesce(v_pt.chain_depth, 0) + 1;

  INSERT INTO dv.version_tables (version_id, dataset_id, delta_table, chain_depth, hash_sum, added, removed, modified, ord_start, ord_end)
  VALUES (v_id, p_ds, v_table, v_depth, v_sum, v_added, v_removed, v_modified, v_ord0, v_ord_end);
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
-- Entry ordinals (migration 009): the read of the head's entries for the changed keys
-- also returns their ordinals (_dv_old_n in the change), so make_version records what
-- the new delta supersedes without a second lookup of every changed key.
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
  v_ordinals boolean;
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
  v_ordinals := v_layout = 2 AND (SELECT d.row_ordinals FROM dv.datasets d WHERE d.id = v_ds);
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
      v_old := dv_internal.entries_sql(v_head, NULL, NULL, NULL, true, v_ordinals);
      v_from := format('pg_temp.dv_commit_e e FULL JOIN (%s) o ON o._dv_key = e._dv_key', v_old);
      v_where := 'o._dv_key IS NULL OR e._dv_key IS NULL OR e._dv_hash IS DISTINCT FROM o._dv_hash OR e._dv_count <> o._dv_count';
      v_csel := v_csel || ARRAY['coalesce(e._dv_key, o._dv_key) AS _dv_key', 'e._dv_hash AS _dv_hash', 'coalesce(e._dv_count, 0) AS _dv_count'];
    ELSE
      SELECT count(*) INTO v_n FROM pg_temp.dv_commit_e;
      v_old := dv_internal.entries_sql(v_head, 'pg_temp.dv_commit_e', NULL, v_n, true, v_ordinals);
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
    IF v_ordinals THEN
      v_csel := v_csel || 'o._dv_n AS _dv_old_n'::text;
    END IF;
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
-- Checkpoints number their rows
-- ---------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION dv_internal.checkpoint(p_version bigint)
RETURNS name
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- Materializes a version into dv_rows."c<dataset>_v<version>"; reads of it and of its
-- descendants stop there instead of walking further back. Layout 2 copies the values
-- only (no hashes to compute) and indexes the key column; with entry ordinals its rows
-- are numbered from 0, and versions committed on top of it count on from its row count.
-- Versions already committed on top keep bits counted from the old chain's root, so they
-- are read by joins until they are checkpointed themselves.
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
    EXECUTE format('CREATE TABLE dv_rows.%I AS SELECT %s, NULL::boolean AS _dv_gone%s FROM (%s) r',
      v_table, v_cols,
      CASE WHEN (SELECT d.row_ordinals FROM dv.datasets d WHERE d.id = v_t.dataset_id) THEN ', (row_number() OVER () - 1)::int AS _dv_n' ELSE '' END,
      dv_internal.entries_sql(p_version, NULL, NULL, NULL, false));
    EXECUTE format('CREATE UNIQUE INDEX ON dv_rows.%I (%I) WITH (fillfactor = 100)', v_table, v_key);
  ELSE
    EXECUTE format('CREATE TABLE dv_rows.%I AS SELECT %s, _dv_key, _dv_hash, _dv_count FROM (%s) r',
      v_table, v_cols, dv_internal.read_sql(p_version));
    EXECUTE format('CREATE UNIQUE INDEX ON dv_rows.%I (_dv_key) WITH (fillfactor = 100)', v_table);
  END IF;
  EXECUTE format('ANALYZE dv_rows.%I', v_table);
  EXECUTE format('COMMENT ON TABLE dv_rows.%I IS %L', v_table,
    format('pgdv: checkpoint (full copy) of version %s of dataset %s. Read versions with dv.rows().', p_version, v_t.dataset_id));
  INSERT INTO dv_internal.dataset_relations (dataset_id, schema_name, rel_name, rel_kind) VALUES (v_t.dataset_id, 'dv_rows', v_table, 'table');
  UPDATE dv.version_tables t SET checkpoint_table = v_table, chain_depth = 0 WHERE t.version_id = p_version;
  RETURN v_table;
END
$$;

REVOKE EXECUTE ON FUNCTION
  dv_internal.bits_root(bigint), dv_internal.dead_bits(bigint, bigint), dv_internal.bits_of(text),
  dv_internal.entries_sql(bigint, text, bigint, bigint, boolean, boolean)
FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
  dv_internal.bits_root(bigint), dv_internal.dead_bits(bigint, bigint), dv_internal.bits_of(text),
  dv_internal.entries_sql(bigint, text, bigint, bigint, boolean, boolean)
TO pgdv_reader;

-- ---------------------------------------------------------------------------
-- Diffs across many changes read both sides by bits
-- ---------------------------------------------------------------------------

ALTER FUNCTION dv_internal.diff_sql(bigint, bigint, boolean) RENAME TO diff_join_sql;
COMMENT ON FUNCTION dv_internal.diff_join_sql(bigint, bigint, boolean) IS 'SQL of the row diff between two versions computed from the deltas above their newest shared version, reading that version restricted to the changed keys (columns change, key, old_hash, new_hash, old_values, new_values, _k); see dv_internal.diff_sql.';

CREATE FUNCTION dv_internal.diff_sql(p_a bigint, p_b bigint, p_values boolean)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The row diff between versions a and b (columns change, key, old_hash, new_hash,
-- old_values, new_values, _k). When both chains have complete dead-entry bits from the
-- same root and the changes between them are many (their own tables hold more than 1/32
-- of the root's rows), each side is read in one pass by bits: the old side is every
-- entry a shows and b does not (in the tables both chains share: bit clear in a's
-- bitmap, set in b's; in a's own tables: clear in a's), the new side the converse, and
-- the two are joined by key; an entry rewritten with the same values on both sides
-- drops out on its hash. No key is looked up and nothing is sorted before the join. A
-- few changes on a big root are cheaper by key lookups: dv_internal.diff_join_sql.
DECLARE
  v_ds bigint := (SELECT v.dataset_id FROM dv.versions v WHERE v.id = p_a);
  v_root bigint := dv_internal.bits_root(p_a);
  v_sys constant text := ' - ''_dv_key'' - ''_dv_hash'' - ''_dv_count''';
  v_key text;
  v_na text[]; v_ta text[]; v_nb text[]; v_tb text[];
  v_own real;
  v_root_rows real;
  v_o text[];
  v_n text[];
BEGIN
  IF v_root IS NULL OR v_root IS DISTINCT FROM dv_internal.bits_root(p_b) THEN
    RETURN dv_internal.diff_join_sql(p_a, p_b, p_values);
  END IF;
  -- How many entries the two sides' own tables hold, against the root's rows.
  WITH ca AS (SELECT * FROM dv_internal.chain(p_a)), cb AS (SELECT * FROM dv_internal.chain(p_b)),
       own AS (SELECT rel FROM ca WHERE ca.version_id NOT IN (SELECT cb.version_id FROM cb)
               UNION ALL SELECT rel FROM cb WHERE cb.version_id NOT IN (SELECT ca.version_id FROM ca))
  SELECT coalesce(sum(greatest(pc.reltuples, 0)), 0) INTO v_own
  FROM own JOIN pg_class pc ON pc.oid = format('dv_rows.%I', own.rel)::regclass;
  SELECT greatest(pc.reltuples, 0) INTO v_root_rows
  FROM dv_internal.chain(p_a) c JOIN pg_class pc ON pc.oid = format('dv_rows.%I', c.rel)::regclass WHERE c.version_id = v_root;
  IF v_own * 32 <= coalesce(v_root_rows, 0) THEN
    RETURN dv_internal.diff_join_sql(p_a, p_b, p_values);
  END IF;

  v_key := (dv_internal.key_columns(v_ds))[1];
  SELECT array_agg(c.column_name ORDER BY c.ordinal), array_agg(c.data_type ORDER BY c.ordinal) INTO v_na, v_ta FROM dv_internal.version_cols(p_a) c;
  SELECT array_agg(c.column_name ORDER BY c.ordinal), array_agg(c.data_type ORDER BY c.ordinal) INTO v_nb, v_tb FROM dv_internal.version_cols(p_b) c;
  SELECT array_agg(format('SELECT %s FROM ONLY dv_rows.%I x WHERE x._dv_gone IS NULL AND get_bit((SELECT dv_bm.bm_a FROM dv_bm), x._dv_n) = 0%s',
                          dv_internal.entry_sql(v_ds, ca.version_id, v_na, v_ta, true), ca.rel,
                          CASE WHEN ca.version_id IN (SELECT cb.version_id FROM dv_internal.chain(p_b) cb)
                               THEN ' AND get_bit((SELECT dv_bm.bm_b FROM dv_bm), x._dv_n) = 1' ELSE '' END))
    INTO v_o FROM dv_internal.chain(p_a) ca;
  SELECT array_agg(format('SELECT %s FROM ONLY dv_rows.%I x WHERE x._dv_gone IS NULL AND get_bit((SELECT dv_bm.bm_b FROM dv_bm), x._dv_n) = 0%s',
                          dv_internal.entry_sql(v_ds, cb.version_id, v_nb, v_tb, true), cb.rel,
                          CASE WHEN cb.version_id IN (SELECT ca.version_id FROM dv_internal.chain(p_a) ca)
                               THEN ' AND get_bit((SELECT dv_bm.bm_a FROM dv_bm), x._dv_n) = 1' ELSE '' END))
    INTO v_n FROM dv_internal.chain(p_b) cb;
  RETURN format($f$WITH dv_bm AS MATERIALIZED (SELECT dv_internal.dead_bits(%1$s, %3$s) AS bm_a, dv_internal.dead_bits(%2$s, %3$s) AS bm_b)
    SELECT CASE WHEN o._dv_key IS NULL THEN 'added' WHEN n._dv_key IS NULL THEN 'removed' ELSE 'modified' END AS change,
           CASE WHEN n._dv_key IS NOT NULL THEN jsonb_build_object(%4$L, n._dv_key) ELSE jsonb_build_object(%4$L, o._dv_key) END AS key,
           encode(o._dv_hash, 'hex') AS old_hash, encode(n._dv_hash, 'hex') AS new_hash,
           CASE WHEN %5$L AND o._dv_key IS NOT NULL THEN to_jsonb(o) %6$s END AS old_values,
           CASE WHEN %5$L AND n._dv_key IS NOT NULL THEN to_jsonb(n) %6$s END AS new_values,
           coalesce(n._dv_key, o._dv_key) AS _k
    FROM (%7$s) o FULL JOIN (%8$s) n ON n._dv_key = o._dv_key
    WHERE o._dv_hash IS DISTINCT FROM n._dv_hash$f$,
    p_a, p_b, v_root, v_key, p_values, v_sys, array_to_string(v_o, ' UNION ALL '), array_to_string(v_n, ' UNION ALL '));
END
$$;
COMMENT ON FUNCTION dv_internal.diff_sql(bigint, bigint, boolean) IS 'SQL of the row diff between two versions (columns change, key, old_hash, new_hash, old_values, new_values, _k): by dead-entry bits for many changes on a chain with them, else by key lookups (dv_internal.diff_join_sql). Example: SELECT dv_internal.diff_sql(41, 42, false)';

REVOKE EXECUTE ON FUNCTION dv_internal.diff_sql(bigint, bigint, boolean), dv_internal.rows_sql(bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dv_internal.diff_sql(bigint, bigint, boolean), dv_internal.rows_sql(bigint) TO pgdv_reader;
