-- 011 whole-row references: a dataset column named like a query alias no longer changes
-- what dv.rows, dv.row, dv.verify, dv.diff and dv.merge return.
--
-- The SQL these functions generate turned rows into jsonb with to_jsonb(alias), where
-- alias is the subquery (q, r, o, n, b, t). PostgreSQL reads a bare name as a column
-- first, so for a dataset with a column of that name to_jsonb(q) was that column's value:
-- dv.rows returned "qq" instead of the row, and dv.diff failed on a column named n
-- ("column reference is ambiguous"). alias.* is always the whole row.
-- Each function below is the latest definition (003, 008, 009), with to_jsonb(alias)
-- written to_jsonb(alias.*) and nothing else changed.

-- from 003-rows.sql
CREATE OR REPLACE FUNCTION dv.rows(p_dataset text, p_ref text DEFAULT 'main')
RETURNS SETOF jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- jsonb so that one signature serves every dataset from psql. For typed columns, run the
-- SQL of dv.rows_sql, query a tag view, or SELECT * FROM jsonb_populate_record(...).
BEGIN
  RETURN QUERY EXECUTE format('SELECT to_jsonb(q.*) FROM (%s) q', dv.rows_sql(p_dataset, p_ref));
END
$$;

-- from 008-rows-layout.sql
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
    EXECUTE format('SELECT to_jsonb(r.*) - ''_dv_key'' - ''_dv_hash'' - ''_dv_count'' FROM (%s) r',
      dv_internal.entries_sql(v_version, format('(SELECT x.%1$I AS _dv_key FROM jsonb_to_record($1) AS x(%2$s))', v_keys[1], v_cols), NULL, 1, false))
      INTO v_out USING p_key;
    RETURN v_out;
  END IF;
  EXECUTE format('SELECT %s FROM jsonb_to_record($1) AS x(%s)', dv_internal.hash_sql('x', v_names, v_types), v_cols) INTO v_hash USING p_key;
  EXECUTE format('SELECT to_jsonb(r.*) - ''_dv_key'' - ''_dv_hash'' - ''_dv_count'' FROM (%s) r',
    dv_internal.read_sql(v_version, '(SELECT $1::bytea AS _dv_key)', NULL, 1))
    INTO v_out USING v_hash;
  RETURN v_out;
END
$$;

-- from 008-rows-layout.sql
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
      v_keyobj := format('to_jsonb(r.*) - %L - %L - %L', '_dv_key', '_dv_hash', '_dv_count');
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

-- from 003-rows.sql
CREATE OR REPLACE FUNCTION dv_internal.diff_join_sql(p_a bigint, p_b bigint, p_values boolean)
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
             CASE WHEN n._dv_key IS NOT NULL THEN to_jsonb(n.*) %1$s ELSE to_jsonb(o.*) %1$s END AS key,
             CASE WHEN coalesce(n._dv_count, 0) > coalesce(o._dv_count, 0) THEN NULL ELSE encode(o._dv_hash, 'hex') END AS old_hash,
             CASE WHEN coalesce(n._dv_count, 0) > coalesce(o._dv_count, 0) THEN encode(n._dv_hash, 'hex') END AS new_hash,
             CASE WHEN %2$L AND coalesce(n._dv_count, 0) < coalesce(o._dv_count, 0) THEN to_jsonb(o.*) %1$s END AS old_values,
             CASE WHEN %2$L AND coalesce(n._dv_count, 0) > coalesce(o._dv_count, 0) THEN to_jsonb(n.*) %1$s END AS new_values,
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
           CASE WHEN %2$L AND o._dv_key IS NOT NULL THEN to_jsonb(o.*) %1$s END AS old_values,
           CASE WHEN %2$L AND n._dv_key IS NOT NULL THEN to_jsonb(n.*) %1$s END AS new_values,
           coalesce(n._dv_key, o._dv_key) AS _k
    FROM o FULL JOIN n ON n._dv_key = o._dv_key
    WHERE o._dv_hash IS DISTINCT FROM n._dv_hash$f$, v_sys, p_values, v_keyn, v_keyo);
END
$$;

-- from 009-entry-ordinals.sql
CREATE OR REPLACE FUNCTION dv_internal.diff_sql(p_a bigint, p_b bigint, p_values boolean)
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
           CASE WHEN %5$L AND o._dv_key IS NOT NULL THEN to_jsonb(o.*) %6$s END AS old_values,
           CASE WHEN %5$L AND n._dv_key IS NOT NULL THEN to_jsonb(n.*) %6$s END AS new_values,
           coalesce(n._dv_key, o._dv_key) AS _k
    FROM (%7$s) o FULL JOIN (%8$s) n ON n._dv_key = o._dv_key
    WHERE o._dv_hash IS DISTINCT FROM n._dv_hash$f$,
    p_a, p_b, v_root, v_key, p_values, v_sys, array_to_string(v_o, ' UNION ALL '), array_to_string(v_n, ' UNION ALL '));
END
$$;

-- from 003-rows.sql
CREATE OR REPLACE FUNCTION dv.merge(
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
           CASE WHEN b._dv_key IS NULL THEN NULL ELSE to_jsonb(b.*) %4$s END AS bj,
           CASE WHEN o._dv_key IS NULL THEN NULL ELSE to_jsonb(o.*) %4$s END AS oj,
           CASE WHEN t._dv_key IS NULL THEN NULL ELSE to_jsonb(t.*) %4$s END AS tj
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

-- CREATE OR REPLACE set dv.merge's settings back to its own SET clause; 008 had added these.
ALTER FUNCTION dv.merge(text, text, text, text, text) SET "DateStyle" = 'ISO, MDY' SET "TimeZone" = 'UTC' SET "IntervalStyle" = 'postgres' SET extra_float_digits = 1;
