-- 010 first loads: a dataset's first commit from a file takes the loaded table over as its
-- version table instead of copying it.
--
-- Until now every load went COPY -> a session TEMP staging table -> dv.commit, and a
-- dataset's first commit then copied every staged row into the version's table
-- (INSERT ... SELECT, numbering the rows) before indexing and hashing it. On 5M rows that
-- copy cost 6.4 s of a 21.4 s commit, more than the COPY itself.
--
-- dv.stage_first(dataset, columns) gives, while a dataset has no version yet, a staging
-- table already shaped like the version table of a row-layout-2 dataset: the columns, the
-- key NOT NULL, _dv_gone, and _dv_n numbered by an identity column as COPY writes the
-- rows. It is a permanent table in dv_rows, so it must be filled and committed in one
-- transaction (BEGIN; SELECT dv.stage_first(...); COPY ...; SELECT * FROM dv.commit(...);
-- COMMIT) for an interruption to leave nothing behind; made in that transaction, it can
-- also take COPY ... (FREEZE). dv.commit renames it into the version table, drops the
-- identity, revokes the loader's grants, and hashes it in the same parallel scan that
-- checks _dv_gone and _dv_n were left to pgdv. The key index, the content hash and every
-- later read are exactly as for a copied first commit.
-- When the dataset has a version already, or its key does not suit layout 2, dv.stage_first
-- is dv.stage. dv.commit given a dv.stage_first table it cannot take over (another mode, a
-- branch with versions) copies from it as from any staging table and then drops it.
-- A table left by a load that committed its transaction without dv.commit is dropped,
-- once the session that made it has ended, by dv.drop_stale_loads: pgdv gc calls it, and
-- so does the next dv.stage_first of the dataset.
--
-- dv.commit is now a wrapper; the commit itself is dv_internal.commit_staged (009's
-- dv.commit, renamed, unchanged).
--
-- Also: a layout-2 dataset records its key type at the first commit
-- (dv.datasets.row_key_type), which fixes a first commit in mode apply.

CREATE TABLE dv_internal.first_loads (
  relid        oid PRIMARY KEY,
  dataset_id   bigint NOT NULL REFERENCES dv.datasets (id) ON DELETE CASCADE,
  heads        jsonb NOT NULL,
  grantee      name,
  backend_pid  integer NOT NULL,
  backend_start timestamptz,
  created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dv_internal.first_loads IS 'Staging tables made by dv.stage_first that a first commit may take over as its version table: the dataset, the branch heads when staged, the role granted INSERT, and the session that made them.';

-- ---------------------------------------------------------------------------
-- The key type of a layout-2 dataset is known from its first commit on
-- ---------------------------------------------------------------------------
-- Before 010 dv_internal.key_type took it from the first version's columns, so within a
-- dataset's first commit (layout settled, no columns recorded yet) a read of the empty
-- root spelled its key "NULL::" and a first commit in mode apply failed with a syntax
-- error.

ALTER TABLE dv.datasets ADD COLUMN row_key_type text;
COMMENT ON COLUMN dv.datasets.row_key_type IS 'Row layout 2: the key column''s type (format_type), recorded at the first commit.';
UPDATE dv.datasets d SET row_key_type = (
  SELECT c.data_type FROM dv.version_columns c JOIN dv.versions v ON v.id = c.version_id
  WHERE v.dataset_id = d.id AND c.is_key ORDER BY c.version_id LIMIT 1)
WHERE d.row_layout = 2;

CREATE FUNCTION dv_internal.key_suits_layout2(p_type regtype)
RETURNS boolean
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- Row layout 2 keys entries by the key column's own value: its type needs default
  -- btree (the unique index) and hash (joins of many keys) operator classes.
  SELECT p_type IS NOT NULL
     AND EXISTS (SELECT 1 FROM pg_opclass o JOIN pg_am a ON a.oid = o.opcmethod WHERE a.amname = 'btree' AND o.opcdefault AND o.opcintype = p_type)
     AND EXISTS (SELECT 1 FROM pg_opclass o JOIN pg_am a ON a.oid = o.opcmethod WHERE a.amname = 'hash' AND o.opcdefault AND o.opcintype = p_type)
$$;
COMMENT ON FUNCTION dv_internal.key_suits_layout2(regtype) IS 'Whether a single key column of this type gives a dataset row layout 2 (default btree and hash operator classes). Example: SELECT dv_internal.key_suits_layout2(''bigint'')';

CREATE OR REPLACE FUNCTION dv_internal.settle_layout(p_ds bigint, p_names text[], p_types text[])
RETURNS smallint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- The dataset's layout; at its first commit (none recorded yet) chosen from the schema
-- being committed and recorded, with entry ordinals for layout 2. Only that first time
-- is the dataset's row locked: a lock on every commit would make commits to different
-- branches wait for each other.
-- Layout 2 also records the key column's type (migration 010): the empty root's entries
-- are read with it before the first version has recorded its columns.
DECLARE
  v_layout smallint;
  v_keys text[];
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
    IF dv_internal.key_suits_layout2(to_regtype(p_types[array_position(p_names, v_keys[1])])) THEN
      v_layout := 2;
    END IF;
  END IF;
  UPDATE dv.datasets d SET row_layout = v_layout, row_ordinals = (v_layout = 2),
         row_key_type = CASE WHEN v_layout = 2 THEN p_types[array_position(p_names, v_keys[1])] END
  WHERE d.id = p_ds;
  RETURN v_layout;
END
$$;

CREATE OR REPLACE FUNCTION dv_internal.key_type(p_ds bigint)
RETURNS text
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- The type of _dv_key in a dataset's entries: bytea (a key or row hash) in layout 1,
  -- the key column's type in layout 2.
  SELECT CASE WHEN d.row_layout = 2
    THEN coalesce(d.row_key_type,
                  (SELECT c.data_type FROM dv.version_columns c JOIN dv.versions v ON v.id = c.version_id
                   WHERE v.dataset_id = p_ds AND c.is_key ORDER BY c.version_id LIMIT 1))
    ELSE 'bytea' END
  FROM dv.datasets d WHERE d.id = p_ds
$$;

-- ---------------------------------------------------------------------------
-- Staging for a first commit
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv.drop_stale_loads(p_dataset text DEFAULT NULL, p_dry_run boolean DEFAULT false)
RETURNS TABLE (dataset text, staging_table text, created_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- A dv.stage_first table belongs to the session that made it; once that session has
-- ended without committing it, nothing can finish the load. A session still open (an
-- autocommit load between its COPY and its commit) keeps its table.
DECLARE
  v_old record;
BEGIN
  FOR v_old IN
    SELECT f.relid, d.name, c.relname, f.created_at
    FROM dv_internal.first_loads f JOIN dv.datasets d ON d.id = f.dataset_id LEFT JOIN pg_class c ON c.oid = f.relid
    WHERE (p_dataset IS NULL OR d.name = p_dataset)
      AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a
                      WHERE a.pid = f.backend_pid AND (a.backend_start IS NULL OR a.backend_start IS NOT DISTINCT FROM f.backend_start))
    ORDER BY f.created_at
  LOOP
    dataset := v_old.name;
    staging_table := format('dv_rows.%I', v_old.relname);
    created_at := v_old.created_at;
    RETURN NEXT;
    CONTINUE WHEN p_dry_run;
    DELETE FROM dv_internal.dataset_relations r WHERE r.schema_name = 'dv_rows' AND r.rel_name = v_old.relname;
    IF v_old.relname IS NOT NULL THEN
      EXECUTE format('DROP TABLE dv_rows.%I', v_old.relname);
    END IF;
    DELETE FROM dv_internal.first_loads f WHERE f.relid = v_old.relid;
  END LOOP;
END
$$;
COMMENT ON FUNCTION dv.drop_stale_loads(text, boolean) IS 'Drops the dv.stage_first tables (of one dataset, or all) whose session ended without committing them, and lists them; p_dry_run only lists. pgdv gc calls it; so does dv.stage_first for its dataset.
Example: SELECT * FROM dv.drop_stale_loads(p_dry_run => true);';

CREATE FUNCTION dv_internal.first_load(p_ds bigint, p_like regclass, p_heads jsonb)
RETURNS text
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- A table in dv_rows shaped like the first version table of dataset p_ds (row layout 2
-- with ordinals) with p_like's columns, or NULL when a first commit of these columns
-- would not get that layout or the dataset has a version already.
DECLARE
  v_keys text[] := dv_internal.key_columns(p_ds);
  v_ds dv.datasets;
  v_type regtype;
  v_cols text;
  v_user_cols text;
  v_name text;
  v_n int := 0;
  v_grantee name;
BEGIN
  SELECT * INTO v_ds FROM dv.datasets d WHERE d.id = p_ds;
  -- Tables of loads whose session ended without committing one.
  PERFORM dv.drop_stale_loads(v_ds.name);

  IF v_ds.kind <> 'table' OR cardinality(v_keys) IS DISTINCT FROM 1
     OR EXISTS (SELECT 1 FROM dv.version_tables t WHERE t.dataset_id = p_ds)
     OR NOT (v_ds.row_layout IS NULL OR (v_ds.row_layout = 2 AND v_ds.row_ordinals)) THEN
    RETURN NULL;
  END IF;
  -- The test dv_internal.settle_layout makes at the commit.
  SELECT a.atttypid::regtype INTO v_type FROM pg_attribute a WHERE a.attrelid = p_like AND a.attname = v_keys[1] AND NOT a.attisdropped;
  IF NOT dv_internal.key_suits_layout2(v_type) THEN
    RETURN NULL;
  END IF;

  SELECT string_agg(format('%I %s%s', a.attname, format_type(a.atttypid, a.atttypmod), CASE WHEN a.attname = v_keys[1] THEN ' NOT NULL' ELSE '' END), ', ' ORDER BY a.attnum),
         string_agg(format('%I', a.attname), ', ' ORDER BY a.attnum)
    INTO v_cols, v_user_cols
  FROM pg_attribute a WHERE a.attrelid = p_like AND a.attnum > 0 AND NOT a.attisdropped;
  LOOP
    v_name := format('d%s_load_%s%s', p_ds, pg_current_xact_id(), CASE WHEN v_n > 0 THEN '_' || v_n ELSE '' END);
    EXIT WHEN to_regclass(format('dv_rows.%I', v_name)) IS NULL;
    v_n := v_n + 1;
  END LOOP;
  -- _dv_n counts rows in the order COPY writes them; a cached identity costs next to nothing.
  EXECUTE format('CREATE TABLE dv_rows.%I (%s, _dv_gone boolean, _dv_n integer GENERATED BY DEFAULT AS IDENTITY (MINVALUE 0 START WITH 0 CACHE 1000))',
    v_name, v_cols);
  EXECUTE format('COMMENT ON TABLE dv_rows.%I IS %L', v_name,
    format('pgdv: staging table for the first commit of dataset %s (dv.stage_first); dv.commit takes it over as the version''s table.', p_ds));
  -- The loader may fill the dataset's columns only: _dv_gone and _dv_n are pgdv's.
  IF session_user <> current_user AND NOT (SELECT r.rolsuper FROM pg_roles r WHERE r.rolname = session_user) THEN
    v_grantee := session_user;
    EXECUTE format('GRANT SELECT, INSERT (%s) ON dv_rows.%I TO %I', v_user_cols, v_name, v_grantee);
    EXECUTE format('GRANT USAGE ON SEQUENCE %s TO %I', pg_get_serial_sequence(format('dv_rows.%I', v_name), '_dv_n'), v_grantee);
  END IF;
  INSERT INTO dv_internal.first_loads (relid, dataset_id, heads, grantee, backend_pid, backend_start)
  VALUES (format('dv_rows.%I', v_name)::regclass, p_ds, p_heads, v_grantee, pg_backend_pid(),
          (SELECT a.backend_start FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()));
  INSERT INTO dv_internal.dataset_relations (dataset_id, schema_name, rel_name, rel_kind) VALUES (p_ds, 'dv_rows', v_name, 'table');
  RETURN format('dv_rows.%I', v_name);
END
$$;
COMMENT ON FUNCTION dv_internal.first_load(bigint, regclass, jsonb) IS 'Makes the dv_rows table behind dv.stage_first (p_like''s columns, key NOT NULL, _dv_gone, _dv_n identity) and registers it in dv_internal.first_loads; NULL when the dataset''s first commit would not take it over. Example: SELECT dv_internal.first_load(7, ''pg_temp.dv_stage_7_1'', ''{"main": 12}'')';

CREATE FUNCTION dv.stage_first(p_dataset text, p_columns text DEFAULT NULL)
RETURNS text
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- SECURITY INVOKER like dv.stage, whose checks and column parsing it reuses: its TEMP
-- table gives the columns, then gives way to the dv_rows table when there is one.
DECLARE
  v_stage text := dv.stage(p_dataset, p_columns);
  v_heads jsonb;
  v_first text;
BEGIN
  EXECUTE 'SELECT heads FROM pg_temp.dv_staging_registry WHERE relid = $1' INTO v_heads USING v_stage::regclass::oid;
  v_first := dv_internal.first_load(dv_internal.dataset_id(p_dataset), v_stage::regclass, v_heads);
  IF v_first IS NULL THEN
    RETURN v_stage;
  END IF;
  EXECUTE 'DELETE FROM pg_temp.dv_staging_registry WHERE relid = $1' USING v_stage::regclass::oid;
  EXECUTE format('DROP TABLE %s', v_stage);
  RETURN v_first;
END
$$;
COMMENT ON FUNCTION dv.stage_first(text, text) IS 'Like dv.stage, but while the dataset has no version (and its single key suits row layout 2) returns a table in dv_rows that dv.commit takes over as the first version''s table instead of copying it. Fill only the dataset''s columns, in the same transaction as dv.commit.
Example: BEGIN; SELECT dv.stage_first(''flights'', ''id bigint, origin text''); COPY dv_rows.d1_load_812 (id, origin) FROM STDIN WITH (FORMAT csv, FREEZE); SELECT * FROM dv.commit(''flights'', ''dv_rows.d1_load_812''); COMMIT;';

-- ---------------------------------------------------------------------------
-- Commits take a first load over
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
-- First loads (migration 010): when dv.commit names a dv.stage_first table in the
-- setting pgdv.first_load, a first commit with ordinals takes that table over as its
-- delta table (renamed; the loader's COPY numbered its rows) instead of copying it, and
-- one parallel scan hashes it and checks what COPY filled in.
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
  v_load oid := nullif(current_setting('pgdv.first_load', true), '')::oid;
  v_grantee name;
  v_check record;
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
  IF v_load IS NOT NULL THEN
    PERFORM set_config('pgdv.first_load', '', true);
    -- Only a table of this dataset shaped exactly like the version's table is taken over.
    SELECT f.grantee INTO v_grantee FROM dv_internal.first_loads f WHERE f.relid = v_load AND f.dataset_id = p_ds;
    IF NOT FOUND OR NOT (v_first_commit AND v_ordinals AND cardinality(p_parents) = 1)
       OR (SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
           WHERE a.attrelid = v_load AND a.attnum > 0 AND NOT a.attisdropped) IS DISTINCT FROM p_names || ARRAY['_dv_gone', '_dv_n']
       OR (SELECT array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) FROM pg_attribute a
           WHERE a.attrelid = v_load AND a.attnum > 0 AND NOT a.attisdropped) IS DISTINCT FROM p_types || ARRAY['boolean', 'integer']
       OR NOT (SELECT a.attnotnull FROM pg_attribute a WHERE a.attrelid = v_load AND a.attname = v_key) THEN
      v_load := NULL;
    END IF;
  END IF;

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
  IF v_load IS NOT NULL THEN
    DELETE FROM dv_internal.dataset_relations r WHERE r.schema_name = 'dv_rows' AND r.rel_name = (SELECT c.relname FROM pg_class c WHERE c.oid = v_load);
    DELETE FROM dv_internal.first_loads f WHERE f.relid = v_load;
    EXECUTE format('ALTER TABLE %s RENAME TO %I', v_load::regclass, v_table);
    EXECUTE format('ALTER TABLE dv_rows.%I ALTER COLUMN _dv_n DROP IDENTITY', v_table);
    IF v_grantee IS NOT NULL THEN
      EXECUTE format('REVOKE ALL ON dv_rows.%I FROM %I', v_table, v_grantee);
    END IF;
  ELSIF cardinality(v_inherit) = 0 THEN
    EXECUTE format('CREATE TABLE dv_rows.%I (%s)', v_table, array_to_string(v_extra, ', '));
  ELSE
    EXECUTE format('CREATE TABLE dv_rows.%I (%s) INHERITS (%s)', v_table, array_to_string(v_extra, ', '), array_to_string(v_inherit, ', '));
  END IF;
  INSERT INTO dv_internal.dataset_relations (dataset_id, schema_name, rel_name, rel_kind) VALUES (p_ds, 'dv_rows', v_table, 'table');
  EXECUTE format('COMMENT ON TABLE dv_rows.%I IS %L', v_table,
    format('pgdv: rows changed by version %s of dataset %s against its first parent (tombstones: %s). Read versions with dv.rows().', v_id, p_ds,
      CASE WHEN v_layout = 2 THEN '_dv_gone true' ELSE '_dv_hash NULL' END));

  SELECT string_agg(format('%I', n), ', ') INTO v_cols FROM unnest(p_names) n;
  IF v_load IS NOT NULL THEN
    -- The taken-over rows: hashed (for the content hash) in the same parallel scan that
    -- checks COPY left _dv_gone and _dv_n to pgdv (no tombstone, every entry numbered).
    EXECUTE format('SELECT count(*) AS n, count(*) FILTER (WHERE c._dv_gone IS NOT NULL) AS gone, count(c._dv_n) AS numbered,
                           min(c._dv_n) AS lo, max(c._dv_n) AS hi, %s AS hash_sum
                    FROM (SELECT x._dv_gone, x._dv_n, unnest(ARRAY[(''x'' || encode(%s, ''hex''))::bit(256)]) AS _dv_hb
                          FROM ONLY dv_rows.%I x) c',
      dv_internal.hash_sum_sql('c._dv_hb', '1'), dv_internal.hash_sql('x', p_names, p_types), v_table) INTO v_check;
    IF v_check.gone > 0 OR v_check.numbered < v_check.n OR v_check.lo < 0 OR v_check.hi - v_check.lo + 1 < v_check.n THEN
      RAISE EXCEPTION 'staging table for dataset "%" has rows whose _dv_gone or _dv_n was set by hand', (SELECT d.name FROM dv.datasets d WHERE d.id = p_ds)
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Fill only the dataset''s columns of a dv.stage_first table; pgdv numbers the rows';
    END IF;
    v_delta_rows := v_check.n;
    v_added := v_check.n;
    v_removed := 0;
    v_modified := 0;
    v_rows := v_check.n;
    v_sum := v_check.hash_sum;
    v_ord_end := coalesce(v_check.hi + 1, 0);
  ELSIF v_layout = 2 THEN
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
  IF v_load IS NULL THEN
    GET DIAGNOSTICS v_delta_rows = ROW_COUNT;
    v_ord_end := v_ord0 + v_delta_rows;
  END IF;
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
  IF v_load IS NOT NULL THEN
    NULL;  -- hashed and counted when taken over
  ELSIF v_first_commit AND v_layout = 2 THEN
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


ALTER FUNCTION dv.commit(text, regclass, text, text, text, text, boolean, jsonb) RENAME TO commit_staged;
ALTER FUNCTION dv.commit_staged(text, regclass, text, text, text, text, boolean, jsonb) SET SCHEMA dv_internal;
COMMENT ON FUNCTION dv_internal.commit_staged(text, regclass, text, text, text, text, boolean, jsonb) IS 'The commit of a staging table behind dv.commit (same arguments and result), which adds taking a dv.stage_first table over.';

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
AS $$
-- A dv.stage_first table committed in mode replace or append onto a branch with no
-- version yet is named to make_version (setting pgdv.first_load), which takes it over;
-- any other use commits it like a dv.stage table, and then it is dropped. Everything
-- else is dv_internal.commit_staged.
-- Staging columns named _dv_* are pgdv's: commit_staged reads _dv_delete, _dv_hash and
-- _dv_key and skipped any other, so a user column such as "_dv_note" vanished from the
-- version without a word. Now it is refused.
DECLARE
  v_load dv_internal.first_loads;
  v_ds bigint;
  v_head bigint;
  v_reserved text;
BEGIN
  SELECT * INTO v_load FROM dv_internal.first_loads f WHERE f.relid = p_staging;
  SELECT string_agg(format('"%s"', a.attname), ', ' ORDER BY a.attnum) INTO v_reserved
  FROM pg_attribute a
  WHERE a.attrelid = p_staging AND a.attnum > 0 AND NOT a.attisdropped AND a.attname LIKE '\_dv\_%'
    AND a.attname <> '_dv_delete' AND NOT (a.attname IN ('_dv_hash', '_dv_key') AND a.atttypid = 'bytea'::regtype)
    AND NOT (v_load.relid IS NOT NULL AND a.attname IN ('_dv_gone', '_dv_n'));
  IF v_reserved IS NOT NULL THEN
    RAISE EXCEPTION 'staging table % has column(s) % whose names pgdv reserves (_dv_*); nothing was committed', p_staging, v_reserved
      USING ERRCODE = 'invalid_name', HINT = 'Rename them; of such names a staging table may carry only _dv_delete (mode apply) and _dv_hash, _dv_key (bytea)';
  END IF;
  IF v_load.relid IS NULL THEN
    RETURN QUERY SELECT * FROM dv_internal.commit_staged(p_dataset, p_staging, p_mode, p_branch, p_message, p_tag, p_force, p_metadata);
    RETURN;
  END IF;
  v_ds := dv_internal.dataset_id(p_dataset);
  IF v_load.dataset_id <> v_ds THEN
    RAISE EXCEPTION 'staging table % was made for another dataset than "%"', p_staging, p_dataset
      USING ERRCODE = 'invalid_parameter_value', HINT = format('Stage for this dataset: SELECT dv.stage_first(%L, column list)', p_dataset);
  END IF;
  -- Locked as commit_staged locks it; the head the table was staged against must still be it.
  SELECT r.version_id INTO v_head FROM dv.refs r WHERE r.dataset_id = v_ds AND r.name = p_branch AND r.kind = 'branch' FOR UPDATE;
  IF v_head IS NOT NULL AND (v_load.heads ->> p_branch) IS NOT NULL AND (v_load.heads ->> p_branch)::bigint <> v_head THEN
    RAISE EXCEPTION 'branch "%" of dataset "%" moved from version % to version % after this staging table was created',
      p_branch, p_dataset, (v_load.heads ->> p_branch)::bigint, v_head
      USING ERRCODE = 'serialization_failure',
            HINT = format('Another commit won; see SELECT * FROM dv.diff(%L, %L, %L), then stage and commit again', p_dataset, v_load.heads ->> p_branch, v_head::text);
  END IF;
  IF v_head IS NOT NULL AND p_mode IN ('replace', 'append') AND NOT EXISTS (SELECT 1 FROM dv.version_tables t WHERE t.version_id = v_head) THEN
    PERFORM set_config('pgdv.first_load', p_staging::oid::text, true);
  END IF;
  RETURN QUERY SELECT * FROM dv_internal.commit_staged(p_dataset, p_staging, p_mode, p_branch, p_message, p_tag, p_force, p_metadata);
  PERFORM set_config('pgdv.first_load', '', true);
  -- Not taken over: it was read like any staging table, and goes like one.
  IF EXISTS (SELECT 1 FROM dv_internal.first_loads f WHERE f.relid = v_load.relid) THEN
    DELETE FROM dv_internal.dataset_relations r WHERE r.schema_name = 'dv_rows' AND r.rel_name = (SELECT c.relname FROM pg_class c WHERE c.oid = v_load.relid);
    DELETE FROM dv_internal.first_loads f WHERE f.relid = v_load.relid;
    EXECUTE format('DROP TABLE %s', v_load.relid::regclass);
  END IF;
END
$$;
COMMENT ON FUNCTION dv.commit(text, regclass, text, text, text, text, boolean, jsonb) IS 'Commits a staging table as a new version of a branch, in one transaction; modes replace (default), append, upsert, delete, and apply (upsert, with rows whose _dv_delete column is true deleting their key).
Stores only changed rows and tombstones. Nothing changed: created = false and no version (unless p_force). A branch that moved since dv.stage raises a conflict (40001) naming both versions. A dv.stage_first table becomes the first version''s table without a copy.
Example: SELECT * FROM dv.commit(''flights'', ''pg_temp.dv_stage_1_1'', p_mode => ''upsert'', p_message => ''fix labels'');
Mixed change: ALTER TABLE pg_temp.dv_stage_1_1 ADD COLUMN _dv_delete boolean; fill it; SELECT * FROM dv.commit(''flights'', ''pg_temp.dv_stage_1_1'', p_mode => ''apply'');';

REVOKE EXECUTE ON FUNCTION
  dv.drop_stale_loads(text, boolean),
  dv_internal.first_load(bigint, regclass, jsonb),
  dv_internal.commit_staged(text, regclass, text, text, text, text, boolean, jsonb),
  dv.stage_first(text, text), dv.commit(text, regclass, text, text, text, text, boolean, jsonb)
FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION dv_internal.commit_staged(text, regclass, text, text, text, text, boolean, jsonb) FROM pgdv_writer;
GRANT EXECUTE ON FUNCTION
  dv_internal.first_load(bigint, regclass, jsonb),
  dv.stage_first(text, text), dv.commit(text, regclass, text, text, text, text, boolean, jsonb)
TO pgdv_writer;
GRANT EXECUTE ON FUNCTION dv.drop_stale_loads(text, boolean) TO pgdv_admin;
