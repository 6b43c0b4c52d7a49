-- 006 rows speed: cheaper row hashing and content-hash sums, and a one-pass first commit.
--
-- Measured on 1M rows (bench/rows.ts): dv.commit spent 3.9 s hashing into a temporary copy,
-- 1.1 s checking duplicate keys, 1.5 s copying into the version's table and 2.4 s summing
-- hashes, against 1.5 s for psql's \copy. The row encoding is unchanged (README, "Canonical
-- row encoding"); only the SQL that computes it is cheaper:
--   * each column's netstring is one NULL-propagating || chain (concat() drops NULLs),
--     and on a UTF8 database the text goes to sha256 through textsend() (the same bytes
--     as convert_to(..., 'UTF8'), without looking the encoding up per row);
--   * the content-hash sum turns each hash into bits once and adds eight 32-bit lanes
--     (was: eight substr/encode/bit casts per hash);
--   * a keyed dataset's first commit writes the staged rows into the version's table in
--     one pass, hashing on the way, and lets the unique index find repeated keys.

CREATE OR REPLACE FUNCTION dv_internal.hash_sql(p_alias text, p_names text[], p_types text[])
RETURNS text
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Row encoding: for each column in order whose value is not NULL, the netstrings of
-- its name and of its canonical text ("<bytes>:<text>,"), concatenated; the hash is
-- SHA-256 of those UTF-8 bytes. NULL columns contribute nothing, so adding a column
-- (NULL in older rows) leaves every existing row hash unchanged.
-- Each column's part is a || chain, NULL when the value is (every canonical form is
-- NULL for NULL), and concat() skips NULL parts. IMMUTABLE holds: a database's
-- server_encoding never changes.
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
    v_parts := v_parts || format('(%L::text || octet_length(%s) || '':'' || %s || '','')',
      format('%s:%s,', octet_length(p_names[v_i]), p_names[v_i]), v_canon, v_canon);
  END LOOP;
  IF current_setting('server_encoding') = 'UTF8' THEN
    RETURN format('sha256(textsend(concat(%s)))', array_to_string(v_parts, ', '));
  END IF;
  RETURN format('sha256(convert_to(concat(%s), ''UTF8''))', array_to_string(v_parts, ', '));
END
$$;
COMMENT ON FUNCTION dv_internal.hash_sql(text, text[], text[]) IS 'SQL expression for the SHA-256 row hash (bytea) of the given columns of p_alias. Example: SELECT dv_internal.hash_sql(''s'', ARRAY[''id''], ARRAY[''bigint''])';

CREATE FUNCTION dv_internal.hash_sum_sql(p_bits text, p_count text)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  -- Sum of hashes (times counts) as 256-bit unsigned integers, as an aggregate expression
  -- over p_bits, a row hash as bit(256) (('x' || encode(hash, 'hex'))::bit(256), NULL
  -- for none): eight unsigned 32-bit lanes, each summed as bigint (lane * count < 2^63;
  -- sum(int8) accumulates in 128 bits), combined once per aggregate as numeric.
  SELECT format('coalesce(%s, 0)', string_agg(format(
    'coalesce(sum(substring(%1$s from %3$s for 32)::bigint * %2$s), 0) * %4$s::numeric',
    p_bits, p_count, l * 32 + 1, (2::numeric ^ (32 * (7 - l)))::numeric(80, 0)), ' + '))
  FROM generate_series(0, 7) l
$$;
COMMENT ON FUNCTION dv_internal.hash_sum_sql(text, text) IS 'Aggregate SQL expression: the sum of row hashes given as bit(256) times counts, as a numeric; content_hash builds on it. Example: SELECT dv_internal.hash_sum_sql(''b'', ''1'')';

-- Replaced by hash_sum_sql (its only caller, make_version, is replaced below).
DROP FUNCTION dv_internal.lanes_sql(text, text);

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
BEGIN
  SELECT * INTO v_pv FROM dv.versions v WHERE v.id = v_first;
  SELECT * INTO v_pt FROM dv.version_tables t WHERE t.version_id = v_first;
  v_first_commit := v_pt.version_id IS NULL;  -- the first parent is a dataset's empty root

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
  EXECUTE format('INSERT INTO dv_rows.%I (%s, _dv_key, _dv_hash, _dv_count) SELECT %s, _dv_key, _dv_hash, _dv_count FROM %s dv_c',
    v_table, v_cols, v_cols, p_change);
  GET DIAGNOSTICS v_delta_rows = ROW_COUNT;
  BEGIN
    EXECUTE format('CREATE UNIQUE INDEX ON dv_rows.%I (_dv_key)', v_table);
  EXCEPTION WHEN unique_violation THEN
    -- Only a first commit gets here (later commits check the staged keys before): name
    -- one repeated key, readable, and how many keys repeat.
    EXECUTE format('SELECT d.n, (SELECT jsonb_build_object(%s) FROM ONLY dv_rows.%I e WHERE e._dv_key = d._dv_key LIMIT 1)
                    FROM (SELECT _dv_key, count(*) OVER () AS n FROM ONLY dv_rows.%I GROUP BY _dv_key HAVING count(*) > 1 LIMIT 1) d',
      (SELECT string_agg(format('%L, e.%I', k, k), ', ') FROM unnest(v_keys) k), v_table, v_table) INTO v_dups, v_bad;
    RAISE EXCEPTION 'staged rows for dataset "%" repeat key % (% duplicated key(s))', (SELECT d.name FROM dv.datasets d WHERE d.id = p_ds), v_bad, v_dups
      USING ERRCODE = 'unique_violation', HINT = 'Each key may appear once per commit; remove the duplicates';
  END;
  -- Small deltas are planned well from their page count; statistics pay off on big ones.
  IF v_delta_rows > 10000 THEN
    EXECUTE format('ANALYZE dv_rows.%I', v_table);
  END IF;

  -- Row hashes are summed as 256-bit numbers: each hash becomes bits once per row, and
  -- hash_sum_sql adds up its eight 32-bit lanes.
  IF v_first_commit THEN
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

  -- e: the staged rows cast to the dataset's types, with key and row hashes.
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
    || CASE WHEN NOT v_keyless AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = p_staging AND a.attname = '_dv_key' AND a.atttypid = 'bytea'::regtype AND NOT a.attisdropped)
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
  ELSIF v_fast THEN
    v_keyobj := (SELECT format('jsonb_build_object(%s)', string_agg(format('%L, %I', k, k), ', ')) FROM unnest(v_keys) k);
    v_nullcond := (SELECT string_agg(format('%I IS NULL', k), ' OR ') FROM unnest(v_keys) k);
    EXECUTE format('SELECT count(*), count(*) FILTER (WHERE %s), (min(%s::text) FILTER (WHERE %s))::jsonb FROM (SELECT %s FROM %s s) x',
      v_nullcond, v_keyobj, v_nullcond, array_to_string(v_sel, ', '), p_staging) INTO v_n, v_i, v_bad;
    IF v_i > 0 THEN
      RAISE EXCEPTION '% staged row(s) for dataset "%" have a NULL key column, e.g. %', v_i, p_dataset, v_bad
        USING ERRCODE = 'not_null_violation', HINT = format('Key columns %s must be set in every row', array_to_string(v_keys, ', '));
    END IF;
    v_change := format('(SELECT %s, coalesce(x._dv_given_key, %s) AS _dv_key, coalesce(x._dv_given_hash, %s) AS _dv_hash, 1::bigint AS _dv_count FROM (SELECT %s FROM %s s) x)',
      (SELECT string_agg(format('x.%I', n), ', ') FROM unnest(v_names) n),
      dv_internal.hash_sql('x', v_keys, (SELECT array_agg(v_types[array_position(v_names, k)]) FROM unnest(v_keys) k)),
      dv_internal.hash_sql('x', v_names, v_types), array_to_string(v_sel, ', '), p_staging);
  ELSE
    DROP TABLE IF EXISTS pg_temp.dv_commit_e;
    DROP TABLE IF EXISTS pg_temp.dv_commit_c;
    -- A deletion (mode apply) is staged as a tombstone: no row hash, count 0.
    EXECUTE format('CREATE TEMP TABLE dv_commit_e ON COMMIT DROP AS SELECT %s, coalesce(x._dv_given_key, %s) AS _dv_key,
                      CASE WHEN NOT x._dv_given_delete THEN coalesce(x._dv_given_hash, %s) END AS _dv_hash,
                      CASE WHEN x._dv_given_delete THEN 0 ELSE 1 END::bigint AS _dv_count
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


COMMENT ON FUNCTION dv.commit(text, regclass, text, text, text, text, boolean, jsonb) IS 'Commits a staging table as a new version of a branch, in one transaction; modes replace (default), append, upsert, delete, and apply (upsert, with rows whose _dv_delete column is true deleting their key).
Stores only changed rows and tombstones. Nothing changed: created = false and no version (unless p_force). A branch that moved since dv.stage raises a conflict (40001) naming both versions.
Example: SELECT * FROM dv.commit(''flights'', ''pg_temp.dv_stage_1_1'', p_mode => ''upsert'', p_message => ''fix labels'');
Mixed change: ALTER TABLE pg_temp.dv_stage_1_1 ADD COLUMN _dv_delete boolean; fill it; SELECT * FROM dv.commit(''flights'', ''pg_temp.dv_stage_1_1'', p_mode => ''apply'');';

-- ---------------------------------------------------------------------------
-- Verify (DESIGN.md "Verify: recompute row hashes of a version")
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv.verify(p_dataset text, p_ref text DEFAULT 'main')
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
-- key hash and the version's content hash. A row whose stored hashes differ from its
-- values (a table edited behind pgdv's back, a damaged page) is counted, and the first
-- one's key named; ok only if no row is bad and the content hash and row count match
-- what the commit recorded. Costs one full read plus the hashing of every row.
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
  IF v_names IS NOT NULL THEN
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
  ok := v_bad = 0 AND computed_hash = v_v.content_hash AND v_rows = v_v.row_count;
  RETURN NEXT;
END
$$;
COMMENT ON FUNCTION dv.verify(text, text) IS 'Recomputes every row hash, key hash and the content hash of a version from its stored values and compares them with what was committed; ok = all match. One full read.
Example: SELECT * FROM dv.verify(''flights'', ''v1.0'');';

-- CREATE OR REPLACE keeps the functions' privileges; the new helper needs its grant.
REVOKE EXECUTE ON FUNCTION dv_internal.hash_sum_sql(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dv_internal.hash_sum_sql(text, text) TO pgdv_reader;
REVOKE EXECUTE ON FUNCTION dv.verify(text, text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dv.verify(text, text) TO pgdv_reader;
