-- 001 catalog: schemas, roles, datasets, versions, refs, reflog, audit log.
--
-- Conventions for every migration after this one:
--   * schema dv is the API: catalog tables (read-only to users), views and functions,
--     each with a COMMENT whose first line is a one-line summary;
--   * dv_internal holds helpers and bookkeeping, dv_rows holds row data;
--   * functions that write are SECURITY DEFINER with search_path pinned to
--     pg_catalog, pg_temp, and name every object with its schema;
--   * EXECUTE is revoked from PUBLIC and granted to pgdv_reader / pgdv_writer / pgdv_admin;
--   * dynamic SQL only through format() with %I / %L;
--   * errors: RAISE ... USING ERRCODE = <standard SQLSTATE>, HINT = <what to do>.

CREATE SCHEMA IF NOT EXISTS dv;
CREATE SCHEMA IF NOT EXISTS dv_internal;
CREATE SCHEMA IF NOT EXISTS dv_rows;

COMMENT ON SCHEMA dv IS 'pgdv: version control and lineage for AI training data. The public API: catalog tables, views and functions.';
COMMENT ON SCHEMA dv_internal IS 'pgdv private helpers and bookkeeping; not an API, may change between releases.';
COMMENT ON SCHEMA dv_rows IS 'pgdv row storage: one table per dataset version delta; read them through dv.rows() and the tag views.';

-- Roles are cluster-wide and several databases may install pgdv at once, so a
-- concurrent creator's success is not an error.
DO $roles$
DECLARE
  v_role text;
BEGIN
  FOREACH v_role IN ARRAY ARRAY['pgdv_reader', 'pgdv_writer', 'pgdv_admin'] LOOP
    BEGIN
      EXECUTE format('CREATE ROLE %I NOLOGIN', v_role);
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
      NULL;
    END;
  END LOOP;
END
$roles$;

COMMENT ON ROLE pgdv_reader IS 'pgdv: may read datasets, versions, diffs and lineage. Grant it to login roles.';
COMMENT ON ROLE pgdv_writer IS 'pgdv: pgdv_reader plus committing versions, moving branches, recording runs and models.';
COMMENT ON ROLE pgdv_admin IS 'pgdv: pgdv_writer plus dropping datasets, retention, garbage collection and the audit log.';

GRANT pgdv_reader TO pgdv_writer;
GRANT pgdv_writer TO pgdv_admin;

REVOKE ALL ON SCHEMA dv, dv_internal, dv_rows FROM PUBLIC;
GRANT USAGE ON SCHEMA dv, dv_rows TO pgdv_reader;
ALTER DEFAULT PRIVILEGES IN SCHEMA dv REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA dv_internal REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA dv_rows GRANT SELECT ON TABLES TO pgdv_reader;

-- ---------------------------------------------------------------------------
-- Catalog tables
-- ---------------------------------------------------------------------------

CREATE TABLE dv.datasets (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name         text NOT NULL UNIQUE,
  kind         text NOT NULL DEFAULT 'table' CHECK (kind IN ('table', 'files')),
  key_columns  text[],
  description  text,
  metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_by   text NOT NULL DEFAULT session_user,
  created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dv.datasets IS 'Datasets under version control: a table of rows (kind table) or a folder of files (kind files).';
COMMENT ON COLUMN dv.datasets.name IS 'Unique name, 1 to 63 bytes of UTF-8, no control characters, no "@", no leading or trailing space.';
COMMENT ON COLUMN dv.datasets.key_columns IS 'Columns that identify a row; NULL means keyless: the row hash is the identity.';

CREATE TABLE dv.versions (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset_id    bigint NOT NULL REFERENCES dv.datasets (id) ON DELETE CASCADE,
  parent_id     bigint REFERENCES dv.versions (id) ON DELETE CASCADE,
  depth         integer NOT NULL DEFAULT 0,
  status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'committed', 'aborted')),
  row_count     bigint NOT NULL DEFAULT 0,
  byte_count    bigint NOT NULL DEFAULT 0,
  content_hash  text,
  message       text,
  metadata      jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_by    text NOT NULL DEFAULT session_user,
  created_at    timestamptz NOT NULL DEFAULT now(),
  committed_at  timestamptz,
  CHECK (status <> 'committed' OR committed_at IS NOT NULL)
);
CREATE INDEX versions_dataset_idx ON dv.versions (dataset_id, id);
CREATE INDEX versions_parent_idx ON dv.versions (parent_id);
COMMENT ON TABLE dv.versions IS 'Immutable dataset versions. Pending while being written; visible once committed, in one transaction.';
COMMENT ON COLUMN dv.versions.parent_id IS 'First parent (NULL for a dataset''s root version); all parents of a merge are in dv.version_parents.';
COMMENT ON COLUMN dv.versions.depth IS 'Number of first-parent steps from the root version.';
COMMENT ON COLUMN dv.versions.content_hash IS 'SHA-256 (hex) of the version''s contents, as documented in the README.';

CREATE TABLE dv.version_parents (
  version_id  bigint NOT NULL REFERENCES dv.versions (id) ON DELETE CASCADE,
  parent_id   bigint NOT NULL REFERENCES dv.versions (id) ON DELETE CASCADE,
  ordinal     smallint NOT NULL CHECK (ordinal >= 1),
  PRIMARY KEY (version_id, ordinal),
  UNIQUE (version_id, parent_id)
);
CREATE INDEX version_parents_parent_idx ON dv.version_parents (parent_id);
COMMENT ON TABLE dv.version_parents IS 'Every parent of every version, first parent = ordinal 1; a merge version has two.';

CREATE TABLE dv.refs (
  dataset_id  bigint NOT NULL REFERENCES dv.datasets (id) ON DELETE CASCADE,
  name        text NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('branch', 'tag')),
  version_id  bigint NOT NULL REFERENCES dv.versions (id),
  protected   boolean NOT NULL DEFAULT false,
  created_by  text NOT NULL DEFAULT session_user,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (dataset_id, name)
);
CREATE INDEX refs_version_idx ON dv.refs (version_id);
COMMENT ON TABLE dv.refs IS 'Named pointers to versions: branches move, tags never do. Every move is in dv.reflog.';
COMMENT ON COLUMN dv.refs.protected IS 'A protected branch (e.g. prod) moves only to versions that pass their critical quality checks.';

CREATE TABLE dv.reflog (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  dataset_id      bigint NOT NULL REFERENCES dv.datasets (id) ON DELETE CASCADE,
  ref_name        text NOT NULL,
  ref_kind        text NOT NULL,
  old_version_id  bigint,
  new_version_id  bigint,
  reason          text,
  moved_by        text NOT NULL DEFAULT session_user,
  moved_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reflog_ref_idx ON dv.reflog (dataset_id, ref_name, moved_at);
COMMENT ON TABLE dv.reflog IS 'Every move of every ref: who, when, from which version to which (NULL old = created, NULL new = deleted).';

CREATE TABLE dv.audit_log (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at          timestamptz NOT NULL DEFAULT clock_timestamp(),
  actor       text NOT NULL DEFAULT session_user,
  txid        bigint NOT NULL DEFAULT txid_current(),
  table_name  text NOT NULL,
  action      text NOT NULL CHECK (action IN ('INSERT', 'UPDATE', 'DELETE')),
  row_id      jsonb,
  old_row     jsonb,
  new_row     jsonb
);
CREATE INDEX audit_log_at_idx ON dv.audit_log (at);
COMMENT ON TABLE dv.audit_log IS 'Every change to the pgdv catalog: who (login role), what (table, action, old and new row), when.';

-- ---------------------------------------------------------------------------
-- Internal helpers
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv_internal.check_name(p_what text, p_name text)
RETURNS void
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Names are stored as given and always quoted with %I, so quotes, semicolons, spaces
-- and Unicode are fine. What is refused: names that cannot be told apart once
-- PostgreSQL truncates identifiers (over 63 bytes), control characters, names that
-- look like flags, and "@", which separates a dataset from a ref (flights@v3).
DECLARE
  v_rule constant text := format('A %s name is 1 to 63 bytes of UTF-8 without control characters, "@", or leading/trailing spaces, and does not start with "-"', p_what);
BEGIN
  IF p_name IS NULL OR p_name = '' THEN
    RAISE EXCEPTION '% name is empty', p_what USING ERRCODE = 'invalid_name', HINT = v_rule;
  ELSIF octet_length(p_name) > 63 THEN
    RAISE EXCEPTION '% name "%" is % bytes long', p_what, p_name, octet_length(p_name)
      USING ERRCODE = 'invalid_name', HINT = v_rule;
  ELSIF p_name ~ '[[:cntrl:]]' OR position('@' IN p_name) > 0 OR p_name ~ '^\s|\s$' OR left(p_name, 1) = '-' THEN
    RAISE EXCEPTION '% name "%" is not allowed', p_what, p_name USING ERRCODE = 'invalid_name', HINT = v_rule;
  END IF;
END
$$;
COMMENT ON FUNCTION dv_internal.check_name(text, text) IS 'Raises invalid_name (42602) with the naming rule unless p_name is an acceptable pgdv name.';

CREATE FUNCTION dv_internal.dataset_id(p_name text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  SELECT d.id INTO v_id FROM dv.datasets d WHERE d.name = p_name;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'dataset "%" does not exist', p_name
      USING ERRCODE = 'undefined_object', HINT = 'List datasets with `pgdv dataset list` or SELECT name FROM dv.datasets';
  END IF;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION dv_internal.dataset_id(text) IS 'The id of the named dataset; raises undefined_object (42704) with a hint when there is none.';

-- Relations that belong to a dataset (row tables, tag views, ...): dropping the
-- dataset drops them. Later migrations register what they create here.
CREATE TABLE dv_internal.dataset_relations (
  dataset_id  bigint NOT NULL REFERENCES dv.datasets (id) ON DELETE CASCADE,
  schema_name name NOT NULL,
  rel_name    name NOT NULL,
  rel_kind    text NOT NULL CHECK (rel_kind IN ('table', 'view')),
  PRIMARY KEY (schema_name, rel_name)
);
COMMENT ON TABLE dv_internal.dataset_relations IS 'Relations created for a dataset, dropped with it.';

CREATE FUNCTION dv_internal.audit()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Row-level audit of catalog tables. SECURITY DEFINER so that a writer's change is
-- recorded even though writers cannot write the audit log themselves.
DECLARE
  v_old jsonb := CASE WHEN TG_OP IN ('UPDATE', 'DELETE') THEN to_jsonb(OLD) END;
  v_new jsonb := CASE WHEN TG_OP IN ('INSERT', 'UPDATE') THEN to_jsonb(NEW) END;
  v_row jsonb := coalesce(v_new, v_old);
  v_id jsonb;
BEGIN
  IF TG_OP = 'UPDATE' AND v_old = v_new THEN
    RETURN NULL;
  END IF;
  v_id := CASE
    WHEN v_row ? 'id' THEN jsonb_build_object('id', v_row -> 'id')
    WHEN v_row ? 'name' THEN jsonb_build_object('dataset_id', v_row -> 'dataset_id', 'name', v_row -> 'name')
    ELSE NULL
  END;
  INSERT INTO dv.audit_log (table_name, action, row_id, old_row, new_row)
  VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME, TG_OP, v_id, v_old, v_new);
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION dv_internal.audit() IS 'Trigger: records each catalog row change in dv.audit_log.';

CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON dv.datasets
  FOR EACH ROW EXECUTE FUNCTION dv_internal.audit();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON dv.versions
  FOR EACH ROW EXECUTE FUNCTION dv_internal.audit();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON dv.refs
  FOR EACH ROW EXECUTE FUNCTION dv_internal.audit();

CREATE FUNCTION dv_internal.refs_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- Tags never move; refs point only at committed versions of their own dataset.
DECLARE
  v_status text;
  v_dataset bigint;
BEGIN
  IF TG_OP = 'UPDATE' AND OLD.kind = 'tag' AND (NEW.version_id <> OLD.version_id OR NEW.kind <> OLD.kind) THEN
    RAISE EXCEPTION 'tag "%" is immutable', OLD.name
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Create a new tag instead';
  END IF;
  SELECT v.status, v.dataset_id INTO v_status, v_dataset FROM dv.versions v WHERE v.id = NEW.version_id;
  IF v_dataset IS DISTINCT FROM NEW.dataset_id THEN
    RAISE EXCEPTION 'version % does not belong to this dataset', NEW.version_id
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Refs point at versions of their own dataset';
  ELSIF v_status <> 'committed' THEN
    RAISE EXCEPTION 'version % is %, not committed', NEW.version_id, v_status
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Only committed versions can be referenced';
  END IF;
  NEW.updated_at := now();
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION dv_internal.refs_guard() IS 'Trigger: keeps tags immutable and refs pointing at committed versions of their dataset.';

CREATE TRIGGER guard BEFORE INSERT OR UPDATE ON dv.refs
  FOR EACH ROW EXECUTE FUNCTION dv_internal.refs_guard();

CREATE FUNCTION dv_internal.refs_reflog()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- The reason comes from the session setting pgdv.reason, which API functions set
-- with set_config(..., true) for the length of their transaction.
DECLARE
  v_reason text := nullif(current_setting('pgdv.reason', true), '');
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO dv.reflog (dataset_id, ref_name, ref_kind, old_version_id, new_version_id, reason)
    VALUES (NEW.dataset_id, NEW.name, NEW.kind, NULL, NEW.version_id, coalesce(v_reason, 'create'));
  ELSIF TG_OP = 'UPDATE' THEN
    IF NEW.version_id IS DISTINCT FROM OLD.version_id THEN
      INSERT INTO dv.reflog (dataset_id, ref_name, ref_kind, old_version_id, new_version_id, reason)
      VALUES (NEW.dataset_id, NEW.name, NEW.kind, OLD.version_id, NEW.version_id, coalesce(v_reason, 'move'));
    END IF;
  ELSIF TG_OP = 'DELETE' THEN
    -- A ref deleted with its dataset leaves nothing to log against.
    IF EXISTS (SELECT 1 FROM dv.datasets d WHERE d.id = OLD.dataset_id) THEN
      INSERT INTO dv.reflog (dataset_id, ref_name, ref_kind, old_version_id, new_version_id, reason)
      VALUES (OLD.dataset_id, OLD.name, OLD.kind, OLD.version_id, NULL, coalesce(v_reason, 'delete'));
    END IF;
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION dv_internal.refs_reflog() IS 'Trigger: appends every ref creation, move and deletion to dv.reflog.';

CREATE TRIGGER reflog AFTER INSERT OR UPDATE OR DELETE ON dv.refs
  FOR EACH ROW EXECUTE FUNCTION dv_internal.refs_reflog();

CREATE FUNCTION dv_internal.versions_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- A committed version never changes what it is: only its metadata and message may be
-- amended (e.g. by retention notes). Pending versions may still be filled in.
BEGIN
  IF OLD.status = 'committed' AND (
       NEW.status <> OLD.status OR NEW.dataset_id <> OLD.dataset_id
       OR NEW.parent_id IS DISTINCT FROM OLD.parent_id OR NEW.row_count <> OLD.row_count
       OR NEW.content_hash IS DISTINCT FROM OLD.content_hash) THEN
    RAISE EXCEPTION 'version % is committed and cannot change', OLD.id
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Commit a new version instead';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION dv_internal.versions_guard() IS 'Trigger: committed versions are immutable.';

CREATE TRIGGER guard BEFORE UPDATE ON dv.versions
  FOR EACH ROW EXECUTE FUNCTION dv_internal.versions_guard();

-- ---------------------------------------------------------------------------
-- API: datasets
-- ---------------------------------------------------------------------------

CREATE VIEW dv.dataset_overview AS
SELECT d.name,
       d.kind,
       d.key_columns,
       d.description,
       (SELECT count(*) FROM dv.versions v WHERE v.dataset_id = d.id AND v.status = 'committed') AS versions,
       (SELECT count(*) FROM dv.refs r WHERE r.dataset_id = d.id AND r.kind = 'branch') AS branches,
       (SELECT count(*) FROM dv.refs r WHERE r.dataset_id = d.id AND r.kind = 'tag') AS tags,
       m.version_id AS main_version,
       mv.row_count AS main_rows,
       mv.byte_count AS main_bytes,
       mv.committed_at AS main_committed_at,
       d.metadata,
       d.created_by,
       d.created_at,
       d.id
FROM dv.datasets d
LEFT JOIN dv.refs m ON m.dataset_id = d.id AND m.name = 'main'
LEFT JOIN dv.versions mv ON mv.id = m.version_id;
COMMENT ON VIEW dv.dataset_overview IS 'One row per dataset: kind, key, counts of versions, branches and tags, and the head of main.';

CREATE FUNCTION dv.dataset_create(
  p_name text,
  p_kind text DEFAULT 'table',
  p_key_columns text[] DEFAULT NULL,
  p_description text DEFAULT NULL,
  p_metadata jsonb DEFAULT '{}'::jsonb
)
RETURNS SETOF dv.dataset_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Creates a dataset with an empty root version and a branch main pointing at it, so
-- every branch always names a version and every pair of versions has an ancestor.
DECLARE
  v_dataset bigint;
  v_root bigint;
  v_col text;
BEGIN
  PERFORM dv_internal.check_name('dataset', p_name);
  IF p_kind IS NULL OR p_kind NOT IN ('table', 'files') THEN
    RAISE EXCEPTION 'dataset kind "%" is not known', p_kind
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use table or files';
  END IF;
  IF p_key_columns IS NOT NULL THEN
    IF p_kind = 'files' THEN
      RAISE EXCEPTION 'a files dataset takes no key columns (its key is the path)'
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Leave the key out for --files';
    END IF;
    IF cardinality(p_key_columns) = 0 THEN
      RAISE EXCEPTION 'the key column list for dataset "%" is empty', p_name
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Name at least one column, or leave the key out for a keyless dataset';
    END IF;
    FOREACH v_col IN ARRAY p_key_columns LOOP
      IF v_col IS NULL OR v_col = '' OR octet_length(v_col) > 63 OR v_col ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'key column "%" of dataset "%" is not a valid column name', coalesce(v_col, 'NULL'), p_name
          USING ERRCODE = 'invalid_name', HINT = 'Column names are 1 to 63 bytes without control characters';
      END IF;
    END LOOP;
    IF (SELECT count(DISTINCT c) FROM unnest(p_key_columns) c) <> cardinality(p_key_columns) THEN
      RAISE EXCEPTION 'key columns of dataset "%" repeat a column: %', p_name, p_key_columns
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Name each key column once';
    END IF;
  END IF;

  BEGIN
    INSERT INTO dv.datasets (name, kind, key_columns, description, metadata)
    VALUES (p_name, p_kind, p_key_columns, p_description, coalesce(p_metadata, '{}'::jsonb))
    RETURNING id INTO v_dataset;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'dataset "%" already exists', p_name
      USING ERRCODE = 'duplicate_object', HINT = 'Choose another name, or drop it first with `pgdv dataset drop`';
  END;

  INSERT INTO dv.versions (dataset_id, parent_id, depth, status, row_count, byte_count, content_hash, message, committed_at)
  VALUES (v_dataset, NULL, 0, 'committed', 0, 0,
          'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'dataset created', now())
  RETURNING id INTO v_root;

  PERFORM set_config('pgdv.reason', 'dataset created', true);
  INSERT INTO dv.refs (dataset_id, name, kind, version_id) VALUES (v_dataset, 'main', 'branch', v_root);
  PERFORM set_config('pgdv.reason', '', true);

  RETURN QUERY SELECT * FROM dv.dataset_overview o WHERE o.id = v_dataset;
END
$$;
COMMENT ON FUNCTION dv.dataset_create(text, text, text[], text, jsonb) IS 'Creates a dataset (kind table or files) with an empty root version on branch main.
p_key_columns: the columns that identify a row; NULL for keyless (the row hash is the identity).
Example: SELECT * FROM dv.dataset_create(''flights'', p_key_columns => ARRAY[''flight_id'']);';

CREATE FUNCTION dv.dataset_info(p_name text)
RETURNS SETOF dv.dataset_overview
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint := dv_internal.dataset_id(p_name);
BEGIN
  RETURN QUERY SELECT * FROM dv.dataset_overview o WHERE o.id = v_id;
END
$$;
COMMENT ON FUNCTION dv.dataset_info(text) IS 'One dataset''s row of dv.dataset_overview; raises undefined_object when it does not exist.';

CREATE FUNCTION dv.dataset_drop(p_name text)
RETURNS SETOF dv.dataset_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Drops the dataset, its versions, refs and every relation registered for it, in
-- one transaction. Lineage and runs that pinned its versions keep their records
-- (later migrations decide what they keep); file chunks are left to garbage collection.
DECLARE
  v_id bigint := dv_internal.dataset_id(p_name);
  v_rel record;
BEGIN
  RETURN QUERY SELECT * FROM dv.dataset_overview o WHERE o.id = v_id;
  -- Views first: they depend on the tables.
  FOR v_rel IN
    SELECT schema_name, rel_name, rel_kind FROM dv_internal.dataset_relations
    WHERE dataset_id = v_id ORDER BY rel_kind = 'table', rel_name DESC
  LOOP
    IF v_rel.rel_kind = 'view' THEN
      EXECUTE format('DROP VIEW IF EXISTS %I.%I CASCADE', v_rel.schema_name, v_rel.rel_name);
    ELSE
      EXECUTE format('DROP TABLE IF EXISTS %I.%I CASCADE', v_rel.schema_name, v_rel.rel_name);
    END IF;
  END LOOP;
  DELETE FROM dv.refs WHERE dataset_id = v_id;
  DELETE FROM dv.datasets WHERE id = v_id;
END
$$;
COMMENT ON FUNCTION dv.dataset_drop(text) IS 'Drops a dataset with all its versions, refs and row tables, in one transaction. Admins only.';

CREATE FUNCTION dv.schema_version()
RETURNS integer
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT max(id) FROM dv_internal.migrations $$;
COMMENT ON FUNCTION dv.schema_version() IS 'The number of the newest pgdv migration applied to this database.';

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA dv FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA dv, dv_internal FROM PUBLIC;
GRANT SELECT ON dv.datasets, dv.versions, dv.version_parents, dv.refs, dv.reflog, dv.dataset_overview TO pgdv_reader;
GRANT SELECT ON dv.audit_log TO pgdv_admin;
GRANT SELECT ON dv_internal.migrations TO pgdv_reader;
GRANT USAGE ON SCHEMA dv_internal TO pgdv_reader;
GRANT EXECUTE ON FUNCTION dv_internal.dataset_id(text), dv_internal.check_name(text, text) TO pgdv_reader;

GRANT EXECUTE ON FUNCTION dv.dataset_info(text), dv.schema_version() TO pgdv_reader;
GRANT EXECUTE ON FUNCTION dv.dataset_create(text, text, text[], text, jsonb) TO pgdv_writer;
GRANT EXECUTE ON FUNCTION dv.dataset_drop(text) TO pgdv_admin;
