-- 002 refs: resolving refs, branches and tags, log, time travel, reset.
--
-- A ref, wherever the API takes one, is
--   a branch or tag name          main, prod, v1.0
--   a version id                  42 or v42 (a version of that dataset)
--   any of those followed by ~N   main~2 = two first-parents back; a bare ~ means ~1
-- Branch and tag names therefore cannot look like version ids, nor contain "~".

CREATE FUNCTION dv_internal.check_ref_name(p_kind text, p_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_rule constant text := format('A %s name is 1 to 63 bytes without spaces, control characters, "~", "^", ":" or "@", does not start with "-", and is not a version id like 42 or v42', p_kind);
BEGIN
  IF p_name IS NULL OR p_name = '' THEN
    RAISE EXCEPTION '% name is empty', p_kind USING ERRCODE = 'invalid_name', HINT = v_rule;
  ELSIF octet_length(p_name) > 63 THEN
    RAISE EXCEPTION '% name "%" is % bytes long', p_kind, p_name, octet_length(p_name) USING ERRCODE = 'invalid_name', HINT = v_rule;
  ELSIF p_name ~ '[[:space:][:cntrl:]~^:@]' OR left(p_name, 1) = '-' OR p_name ~ '^v?[0-9]+$' THEN
    RAISE EXCEPTION '% name "%" is not allowed', p_kind, p_name USING ERRCODE = 'invalid_name', HINT = v_rule;
  END IF;
END
$$;
COMMENT ON FUNCTION dv_internal.check_ref_name(text, text) IS 'Raises invalid_name (42602) with the rule unless p_name is an acceptable branch or tag name.';

CREATE FUNCTION dv.resolve_ref(p_dataset text, p_ref text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Contract: returns the id of a committed version of p_dataset, or raises
-- undefined_object naming the dataset and the ref.
DECLARE
  v_dataset bigint := dv_internal.dataset_id(p_dataset);
  v_base text;
  v_steps int := 0;
  v_part text;
  v_id bigint;
  v_parent bigint;
  v_i int;
BEGIN
  IF p_ref IS NULL OR p_ref = '' THEN
    RAISE EXCEPTION 'empty ref for dataset "%"', p_dataset
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Name a branch, a tag, a version id (42 or v42), optionally with ~N';
  END IF;
  v_base := split_part(p_ref, '~', 1);
  -- Each "~" segment: empty means 1, digits mean that many steps.
  FOR v_part IN SELECT unnest((string_to_array(p_ref, '~'))[2:]) LOOP
    IF v_part = '' THEN
      v_steps := v_steps + 1;
    ELSIF v_part ~ '^[0-9]{1,9}$' THEN
      v_steps := v_steps + v_part::int;
    ELSE
      RAISE EXCEPTION 'ref "%" of dataset "%" is malformed', p_ref, p_dataset
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Write REF~N with N a number, e.g. main~2';
    END IF;
  END LOOP;

  SELECT r.version_id INTO v_id FROM dv.refs r WHERE r.dataset_id = v_dataset AND r.name = v_base;
  IF v_id IS NULL AND v_base ~ '^v?[0-9]{1,18}$' THEN
    SELECT v.id INTO v_id FROM dv.versions v
    WHERE v.id = ltrim(v_base, 'v')::bigint AND v.dataset_id = v_dataset AND v.status = 'committed';
  END IF;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'ref "%" of dataset "%" does not exist', v_base, p_dataset
      USING ERRCODE = 'undefined_object',
            HINT = format('Name a branch, a tag or a version id; list them with `pgdv log %s` or SELECT * FROM dv.ref_overview WHERE dataset = %L', p_dataset, p_dataset);
  END IF;

  FOR v_i IN 1..v_steps LOOP
    SELECT v.parent_id INTO v_parent FROM dv.versions v WHERE v.id = v_id;
    IF v_parent IS NULL THEN
      RAISE EXCEPTION 'ref "%" of dataset "%" goes back past the root version (it has only % first-parent ancestors)', p_ref, p_dataset, v_i - 1
        USING ERRCODE = 'undefined_object', HINT = 'Use a smaller N';
    END IF;
    v_id := v_parent;
  END LOOP;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION dv.resolve_ref(text, text) IS 'The version id a ref names: a branch, a tag, a version id (42 or v42), each optionally followed by ~N (N first parents back).
Example: SELECT dv.resolve_ref(''flights'', ''main~1'');';

CREATE VIEW dv.ref_overview AS
SELECT d.name AS dataset,
       r.name AS ref,
       r.kind,
       r.version_id,
       r.protected,
       v.message,
       v.row_count,
       v.committed_at,
       r.created_by,
       r.created_at,
       r.updated_at
FROM dv.refs r
JOIN dv.datasets d ON d.id = r.dataset_id
JOIN dv.versions v ON v.id = r.version_id;
COMMENT ON VIEW dv.ref_overview IS 'Every branch and tag of every dataset with the version it points at.';

CREATE FUNCTION dv.branch_create(p_dataset text, p_name text, p_from text DEFAULT 'main')
RETURNS SETOF dv.ref_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_dataset bigint := dv_internal.dataset_id(p_dataset);
  v_version bigint;
BEGIN
  PERFORM dv_internal.check_ref_name('branch', p_name);
  v_version := dv.resolve_ref(p_dataset, p_from);
  IF EXISTS (SELECT 1 FROM dv.refs r WHERE r.dataset_id = v_dataset AND r.name = p_name) THEN
    RAISE EXCEPTION 'dataset "%" already has a % named "%"', p_dataset,
      (SELECT r.kind FROM dv.refs r WHERE r.dataset_id = v_dataset AND r.name = p_name), p_name
      USING ERRCODE = 'duplicate_object', HINT = 'Choose another name, or move the branch with `pgdv reset`';
  END IF;
  PERFORM set_config('pgdv.reason', format('branch from %s', p_from), true);
  INSERT INTO dv.refs (dataset_id, name, kind, version_id) VALUES (v_dataset, p_name, 'branch', v_version);
  PERFORM set_config('pgdv.reason', '', true);
  RETURN QUERY SELECT * FROM dv.ref_overview o WHERE o.dataset = p_dataset AND o.ref = p_name;
END
$$;
COMMENT ON FUNCTION dv.branch_create(text, text, text) IS 'Creates a branch at a ref (default main). Moving a pointer: constant time whatever the data size.';

CREATE FUNCTION dv.branch_delete(p_dataset text, p_name text)
RETURNS SETOF dv.ref_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Deleting a branch deletes no version: its versions stay reachable by id, tags and
-- the reflog until retention expires them.
DECLARE
  v_dataset bigint := dv_internal.dataset_id(p_dataset);
BEGIN
  IF NOT EXISTS (SELECT 1 FROM dv.refs r WHERE r.dataset_id = v_dataset AND r.name = p_name AND r.kind = 'branch') THEN
    RAISE EXCEPTION 'dataset "%" has no branch "%"', p_dataset, p_name
      USING ERRCODE = 'undefined_object', HINT = format('List branches with SELECT * FROM dv.ref_overview WHERE dataset = %L', p_dataset);
  END IF;
  IF p_name = 'main' THEN
    RAISE EXCEPTION 'branch main of dataset "%" cannot be deleted', p_dataset
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Move it with `pgdv reset` instead';
  END IF;
  RETURN QUERY SELECT * FROM dv.ref_overview o WHERE o.dataset = p_dataset AND o.ref = p_name;
  PERFORM set_config('pgdv.reason', 'branch deleted', true);
  DELETE FROM dv.refs r WHERE r.dataset_id = v_dataset AND r.name = p_name;
  PERFORM set_config('pgdv.reason', '', true);
END
$$;
COMMENT ON FUNCTION dv.branch_delete(text, text) IS 'Deletes a branch (not main); its versions are kept.';

CREATE FUNCTION dv.tag_create(p_dataset text, p_name text, p_ref text DEFAULT 'main')
RETURNS SETOF dv.ref_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_dataset bigint := dv_internal.dataset_id(p_dataset);
  v_version bigint;
  v_existing dv.refs;
BEGIN
  PERFORM dv_internal.check_ref_name('tag', p_name);
  v_version := dv.resolve_ref(p_dataset, p_ref);
  SELECT * INTO v_existing FROM dv.refs r WHERE r.dataset_id = v_dataset AND r.name = p_name;
  IF FOUND THEN
    RAISE EXCEPTION 'dataset "%" already has a % named "%" (at version %)', p_dataset, v_existing.kind, p_name, v_existing.version_id
      USING ERRCODE = 'duplicate_object', HINT = 'Tags never move: choose another tag name';
  END IF;
  PERFORM set_config('pgdv.reason', format('tag %s', p_ref), true);
  INSERT INTO dv.refs (dataset_id, name, kind, version_id) VALUES (v_dataset, p_name, 'tag', v_version);
  PERFORM set_config('pgdv.reason', '', true);
  RETURN QUERY SELECT * FROM dv.ref_overview o WHERE o.dataset = p_dataset AND o.ref = p_name;
END
$$;
COMMENT ON FUNCTION dv.tag_create(text, text, text) IS 'Creates an immutable tag at a ref (default main).';

CREATE FUNCTION dv.tag_delete(p_dataset text, p_name text)
RETURNS SETOF dv.ref_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_dataset bigint := dv_internal.dataset_id(p_dataset);
BEGIN
  IF NOT EXISTS (SELECT 1 FROM dv.refs r WHERE r.dataset_id = v_dataset AND r.name = p_name AND r.kind = 'tag') THEN
    RAISE EXCEPTION 'dataset "%" has no tag "%"', p_dataset, p_name
      USING ERRCODE = 'undefined_object', HINT = format('List tags with SELECT * FROM dv.ref_overview WHERE dataset = %L AND kind = %L', p_dataset, 'tag');
  END IF;
  RETURN QUERY SELECT * FROM dv.ref_overview o WHERE o.dataset = p_dataset AND o.ref = p_name;
  PERFORM set_config('pgdv.reason', 'tag deleted', true);
  DELETE FROM dv.refs r WHERE r.dataset_id = v_dataset AND r.name = p_name;
  PERFORM set_config('pgdv.reason', '', true);
END
$$;
COMMENT ON FUNCTION dv.tag_delete(text, text) IS 'Deletes a tag (admins only); the version it named is kept.';

CREATE FUNCTION dv.log(p_dataset text, p_ref text DEFAULT 'main', p_limit integer DEFAULT NULL)
RETURNS TABLE (
  version_id    bigint,
  parent_ids    bigint[],
  depth         integer,
  message       text,
  row_count     bigint,
  byte_count    bigint,
  content_hash  text,
  created_by    text,
  committed_at  timestamptz,
  refs          text[]
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Every ancestor of the ref (through all parents of merges), newest first.
DECLARE
  v_start bigint := dv.resolve_ref(p_dataset, p_ref);
BEGIN
  RETURN QUERY
  WITH RECURSIVE anc(id) AS (
    SELECT v_start
    UNION
    SELECT coalesce(p.parent_id, v.parent_id)
    FROM anc
    JOIN dv.versions v ON v.id = anc.id
    LEFT JOIN dv.version_parents p ON p.version_id = v.id
    WHERE coalesce(p.parent_id, v.parent_id) IS NOT NULL
  )
  SELECT v.id,
         coalesce((SELECT array_agg(p.parent_id ORDER BY p.ordinal) FROM dv.version_parents p WHERE p.version_id = v.id),
                  CASE WHEN v.parent_id IS NULL THEN '{}'::bigint[] ELSE ARRAY[v.parent_id] END),
         v.depth, v.message, v.row_count, v.byte_count, v.content_hash, v.created_by, v.committed_at,
         coalesce((SELECT array_agg(r.name ORDER BY r.kind, r.name) FROM dv.refs r WHERE r.version_id = v.id), '{}'::text[])
  FROM anc JOIN dv.versions v ON v.id = anc.id
  ORDER BY v.committed_at DESC, v.id DESC
  LIMIT p_limit;
END
$$;
COMMENT ON FUNCTION dv.log(text, text, integer) IS 'The history of a ref: every ancestor version (all parents of merges), newest first, with the refs pointing at each.
Example: SELECT version_id, message, committed_at FROM dv.log(''flights'', ''main'', 10);';

CREATE FUNCTION dv.ref_at(p_dataset text, p_ref text, p_at timestamptz)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Time travel: the version a branch or tag pointed to at p_at, read from the reflog.
DECLARE
  v_dataset bigint := dv_internal.dataset_id(p_dataset);
  v_entry dv.reflog;
BEGIN
  SELECT * INTO v_entry FROM dv.reflog l
  WHERE l.dataset_id = v_dataset AND l.ref_name = p_ref AND l.moved_at <= p_at
  ORDER BY l.moved_at DESC, l.id DESC LIMIT 1;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'ref "%" of dataset "%" did not exist at %', p_ref, p_dataset, p_at
      USING ERRCODE = 'undefined_object', HINT = format('See its history with SELECT * FROM dv.reflog_of(%L, %L)', p_dataset, p_ref);
  END IF;
  IF v_entry.new_version_id IS NULL THEN
    RAISE EXCEPTION 'ref "%" of dataset "%" had been deleted at %', p_ref, p_dataset, p_at
      USING ERRCODE = 'undefined_object', HINT = format('See its history with SELECT * FROM dv.reflog_of(%L, %L)', p_dataset, p_ref);
  END IF;
  RETURN v_entry.new_version_id;
END
$$;
COMMENT ON FUNCTION dv.ref_at(text, text, timestamptz) IS 'Time travel: the version id a branch or tag pointed to at a given time, from the reflog.
Example: SELECT dv.ref_at(''flights'', ''main'', now() - interval ''1 day'');';

CREATE FUNCTION dv.reflog_of(p_dataset text, p_ref text DEFAULT NULL)
RETURNS TABLE (id bigint, ref text, kind text, old_version_id bigint, new_version_id bigint, reason text, moved_by text, moved_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT l.id, l.ref_name, l.ref_kind, l.old_version_id, l.new_version_id, l.reason, l.moved_by, l.moved_at
  FROM dv.reflog l
  WHERE l.dataset_id = dv_internal.dataset_id(p_dataset) AND (p_ref IS NULL OR l.ref_name = p_ref)
  ORDER BY l.moved_at DESC, l.id DESC
$$;
COMMENT ON FUNCTION dv.reflog_of(text, text) IS 'Every move of a dataset''s refs (or of one ref), newest first: who, when, from, to, why.';

CREATE FUNCTION dv.reset(p_dataset text, p_branch text, p_ref text)
RETURNS SETOF dv.ref_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Moves a branch to any version of its dataset. Nothing is deleted; the old position
-- stays in the reflog.
DECLARE
  v_dataset bigint := dv_internal.dataset_id(p_dataset);
  v_kind text;
  v_target bigint;
BEGIN
  SELECT r.kind INTO v_kind FROM dv.refs r WHERE r.dataset_id = v_dataset AND r.name = p_branch FOR UPDATE;
  IF v_kind IS NULL THEN
    RAISE EXCEPTION 'dataset "%" has no branch "%"', p_dataset, p_branch
      USING ERRCODE = 'undefined_object', HINT = 'Create it with `pgdv branch create`';
  ELSIF v_kind <> 'branch' THEN
    RAISE EXCEPTION '"%" of dataset "%" is a tag; tags never move', p_branch, p_dataset
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Reset a branch instead';
  END IF;
  v_target := dv.resolve_ref(p_dataset, p_ref);
  PERFORM set_config('pgdv.reason', format('reset to %s', p_ref), true);
  UPDATE dv.refs r SET version_id = v_target WHERE r.dataset_id = v_dataset AND r.name = p_branch;
  PERFORM set_config('pgdv.reason', '', true);
  RETURN QUERY SELECT * FROM dv.ref_overview o WHERE o.dataset = p_dataset AND o.ref = p_branch;
END
$$;
COMMENT ON FUNCTION dv.reset(text, text, text) IS 'Moves a branch to the version a ref names (e.g. main~1); recorded in the reflog, nothing deleted.';

REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA dv, dv_internal FROM PUBLIC;
GRANT SELECT ON dv.ref_overview TO pgdv_reader;
GRANT EXECUTE ON FUNCTION dv_internal.check_ref_name(text, text) TO pgdv_reader;
GRANT EXECUTE ON FUNCTION dv.resolve_ref(text, text), dv.log(text, text, integer), dv.ref_at(text, text, timestamptz),
  dv.reflog_of(text, text) TO pgdv_reader;
GRANT EXECUTE ON FUNCTION dv.branch_create(text, text, text), dv.branch_delete(text, text), dv.tag_create(text, text, text),
  dv.reset(text, text, text) TO pgdv_writer;
GRANT EXECUTE ON FUNCTION dv.tag_delete(text, text) TO pgdv_admin;
