-- 005 lineage: experiments and runs with pinned inputs, a model registry with alias
-- history, one lineage graph between typed nodes, and OpenLineage ingest.
--
-- The graph: dv.lineage_nodes holds one row per node that takes part in an edge
-- (kind + the id of the object in its own table + a display name); dv.lineage_edges
-- holds (src, dst, relation) between node ids, always pointing downstream (from the
-- cause to what it caused). Triggers add the automatic edges:
--   dataset_version --derived_from--> dataset_version   (parent -> child, merge parents too)
--   dataset_version --used_by-------> run               (run inputs, pinned at start)
--   run ------------produced--------> dataset_version   (run outputs)
--   run ------------produced--------> model_version
--   job ------------ran-------------> run
--   external_dataset --used_by------> run  /  run --produced--> external_dataset (OpenLineage)
-- dv.lineage_add adds edges by hand (origin 'manual').
--
-- Walks are breadth first, one set-based query per level, with the visited nodes in
-- an array that each level anti-joins against. A node is reported once, at its
-- smallest depth, with one shortest path; a DAG with many paths to the same node (or
-- a cycle added by hand) costs one visit per node, not one per path. No temporary
-- tables, so walks run on read replicas too.

-- ---------------------------------------------------------------------------
-- Experiments and runs
-- ---------------------------------------------------------------------------

CREATE TABLE dv.experiments (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name         text NOT NULL UNIQUE,
  description  text,
  tags         text[] NOT NULL DEFAULT '{}',
  metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_by   text NOT NULL DEFAULT session_user,
  created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dv.experiments IS 'Experiments: named groups of runs (e.g. one model family or one question).';

CREATE TABLE dv.jobs (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  namespace   text NOT NULL,
  name        text NOT NULL,
  facets      jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (namespace, name)
);
COMMENT ON TABLE dv.jobs IS 'Jobs (OpenLineage namespace + name): the recurring process whose executions are runs.';

CREATE TABLE dv.runs (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  experiment_id      bigint REFERENCES dv.experiments (id),
  job_id             bigint REFERENCES dv.jobs (id),
  name               text,
  status             text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed', 'killed')),
  params             jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(params) = 'object'),
  code_ref           text,
  tags               text[] NOT NULL DEFAULT '{}',
  external_id        text COLLATE "C" UNIQUE,
  note               text,
  metadata           jsonb NOT NULL DEFAULT '{}'::jsonb,
  started_by         text NOT NULL DEFAULT session_user,
  started_at         timestamptz NOT NULL DEFAULT now(),
  finished_by        text,
  finished_at        timestamptz,
  status_event_time  timestamptz,
  CHECK ((status = 'running') = (finished_at IS NULL))
);
CREATE INDEX runs_experiment_idx ON dv.runs (experiment_id, id);
CREATE INDEX runs_job_idx ON dv.runs (job_id);
COMMENT ON TABLE dv.runs IS 'Runs: one execution (training, evaluation, a pipeline step) with params, status, code ref, pinned inputs and outputs.';
COMMENT ON COLUMN dv.runs.status IS 'running until finished exactly once as succeeded, failed or killed.';
COMMENT ON COLUMN dv.runs.external_id IS 'The OpenLineage runId of runs recorded from OpenLineage events.';
COMMENT ON COLUMN dv.runs.code_ref IS 'What ran: e.g. a git commit, an image digest.';
COMMENT ON COLUMN dv.runs.status_event_time IS 'eventTime of the OpenLineage event that set the terminal status (later terminal events win).';

CREATE TABLE dv.run_metrics (
  run_id  bigint NOT NULL REFERENCES dv.runs (id) ON DELETE CASCADE,
  key     text NOT NULL,
  step    bigint NOT NULL,
  value   double precision NOT NULL,
  at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (run_id, key, step)
);
COMMENT ON TABLE dv.run_metrics IS 'Metric history of runs: one value per run, key and step.';

-- Pinned inputs and outputs. No foreign key to dv.versions: a run keeps the record of
-- what it read even if an admin drops the dataset.
CREATE TABLE dv.run_datasets (
  run_id        bigint NOT NULL REFERENCES dv.runs (id) ON DELETE CASCADE,
  direction     text NOT NULL CHECK (direction IN ('input', 'output')),
  version_id    bigint NOT NULL,
  dataset_id    bigint NOT NULL,
  dataset_name  text NOT NULL,
  ref           text,
  content_hash  text,
  added_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (run_id, direction, version_id)
);
CREATE INDEX run_datasets_version_idx ON dv.run_datasets (version_id);
COMMENT ON TABLE dv.run_datasets IS 'The exact dataset versions (id and content hash) each run read (input) or wrote (output).';
COMMENT ON COLUMN dv.run_datasets.ref IS 'The ref as given (e.g. main, v1.0); version_id is what it resolved to when pinned.';

-- ---------------------------------------------------------------------------
-- Model registry
-- ---------------------------------------------------------------------------

CREATE TABLE dv.models (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name         text NOT NULL UNIQUE,
  description  text,
  metadata     jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_by   text NOT NULL DEFAULT session_user,
  created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dv.models IS 'Registered models; each has numbered versions and named aliases.';

CREATE TABLE dv.model_versions (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  model_id       bigint NOT NULL REFERENCES dv.models (id),
  version        integer NOT NULL,
  run_id         bigint REFERENCES dv.runs (id),
  artifact_hash  text,
  artifact_uri   text,
  metrics        jsonb NOT NULL DEFAULT '{}'::jsonb,
  description    text,
  metadata       jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_by     text NOT NULL DEFAULT session_user,
  created_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (model_id, version)
);
CREATE INDEX model_versions_run_idx ON dv.model_versions (run_id);
COMMENT ON TABLE dv.model_versions IS 'Model versions: numbered per model, produced by a run, with metrics and a content-addressed artifact.';
COMMENT ON COLUMN dv.model_versions.version IS 'Version number within the model: 1, 2, 3, ... (the id is global).';
COMMENT ON COLUMN dv.model_versions.artifact_hash IS 'SHA-256 (hex) of the artifact''s bytes.';

CREATE TABLE dv.model_aliases (
  model_id          bigint NOT NULL REFERENCES dv.models (id),
  alias             text NOT NULL,
  model_version_id  bigint NOT NULL REFERENCES dv.model_versions (id),
  updated_by        text NOT NULL DEFAULT session_user,
  updated_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (model_id, alias)
);
CREATE INDEX model_aliases_version_idx ON dv.model_aliases (model_version_id);
COMMENT ON TABLE dv.model_aliases IS 'Named pointers to model versions (production, staging, champion, ...); every move is in dv.model_alias_log.';

CREATE TABLE dv.model_alias_log (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  model_id        bigint NOT NULL REFERENCES dv.models (id),
  alias           text NOT NULL,
  action          text NOT NULL CHECK (action IN ('promote', 'rollback')),
  old_version_id  bigint REFERENCES dv.model_versions (id),
  new_version_id  bigint REFERENCES dv.model_versions (id),
  rolled_back     boolean NOT NULL DEFAULT false,
  reason          text,
  moved_by        text NOT NULL DEFAULT session_user,
  moved_at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX model_alias_log_idx ON dv.model_alias_log (model_id, alias, id);
COMMENT ON TABLE dv.model_alias_log IS 'Every alias move: promote (to a chosen version) and rollback (undo the latest promote not yet undone).';

-- ---------------------------------------------------------------------------
-- Lineage graph
-- ---------------------------------------------------------------------------

CREATE TABLE dv.external_datasets (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  namespace   text NOT NULL,
  name        text NOT NULL,
  facets      jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (namespace, name)
);
COMMENT ON TABLE dv.external_datasets IS 'Datasets pgdv does not version (OpenLineage namespace + name), e.g. warehouse tables, S3 prefixes.';

CREATE TABLE dv.lineage_nodes (
  id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  -- COLLATE "C" here and on the hash and id columns below: keys compared bytewise, not
  -- through the locale (strcoll), on every index lookup and sort of a walk or an ingest.
  kind    text COLLATE "C" NOT NULL CHECK (kind IN ('dataset_version', 'run', 'model_version', 'job', 'external_dataset')),
  ref_id  bigint NOT NULL,
  name    text NOT NULL,
  UNIQUE (kind, ref_id)
);
COMMENT ON TABLE dv.lineage_nodes IS 'Nodes of the lineage graph: kind, the id in the kind''s own table (ref_id) and a display name.';
COMMENT ON COLUMN dv.lineage_nodes.ref_id IS 'dv.versions.id, dv.runs.id, dv.model_versions.id, dv.jobs.id or dv.external_datasets.id, by kind.';

CREATE TABLE dv.lineage_edges (
  src         bigint NOT NULL,
  dst         bigint NOT NULL,
  relation    text NOT NULL,
  origin      text NOT NULL DEFAULT 'auto' CHECK (origin IN ('auto', 'manual', 'openlineage')),
  created_by  text NOT NULL DEFAULT session_user,
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (src, dst, relation),
  CHECK (src <> dst)
);
-- (src, dst, relation) is the primary key: walks downstream read only that index. Walks
-- upstream read (dst) with src and relation included, so they never visit the table.
-- src and dst are dv.lineage_nodes ids. No foreign keys: their per-row checks (and row
-- locks) were most of the cost of adding edges in bulk; dv_internal.lineage_link, the
-- only writer, creates both nodes first, and nodes are never deleted by the API.
CREATE INDEX lineage_edges_dst_idx ON dv.lineage_edges (dst) INCLUDE (src, relation);
COMMENT ON TABLE dv.lineage_edges IS 'Edges of the lineage graph, pointing downstream (src caused dst): derived_from, used_by, produced, ran, or a relation given by hand.';

CREATE TABLE dv.openlineage_events (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  event_hash       text COLLATE "C" NOT NULL UNIQUE,
  event_type       text,
  event_time       timestamptz NOT NULL,
  run_external_id  text COLLATE "C" NOT NULL,
  job_namespace    text NOT NULL,
  job_name         text NOT NULL,
  event            jsonb NOT NULL,
  received_by      text NOT NULL DEFAULT session_user,
  received_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX openlineage_events_run_idx ON dv.openlineage_events (run_external_id, event_time);
COMMENT ON TABLE dv.openlineage_events IS 'Raw OpenLineage RunEvents as received, one row per distinct event (event_hash = SHA-256 of the canonical jsonb text).';

-- ---------------------------------------------------------------------------
-- Internal helpers
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv_internal.lineage_kind(p_kind text, p_allow_model boolean DEFAULT false)
RETURNS text
LANGUAGE plpgsql IMMUTABLE
AS $$
-- Accepts the CLI spellings (model-version, dataset, external) and returns the stored kind.
DECLARE
  v text := replace(lower(btrim(coalesce(p_kind, ''))), '-', '_');
BEGIN
  v := CASE v
    WHEN 'dataset' THEN 'dataset_version'
    WHEN 'version' THEN 'dataset_version'
    WHEN 'external' THEN 'external_dataset'
    WHEN 'modelversion' THEN 'model_version'
    ELSE v END;
  IF v IN ('dataset_version', 'run', 'model_version', 'job', 'external_dataset') OR (p_allow_model AND v = 'model') THEN
    RETURN v;
  END IF;
  RAISE EXCEPTION 'node kind "%" is not known', p_kind
    USING ERRCODE = 'invalid_parameter_value',
          HINT = 'Use dataset_version, run, model_version, job or external_dataset' || CASE WHEN p_allow_model THEN ' (or model for all versions of a model)' ELSE '' END;
END
$$;
COMMENT ON FUNCTION dv_internal.lineage_kind(text, boolean) IS 'Normalises a node kind (model-version -> model_version, dataset -> dataset_version) or raises invalid_parameter_value.';

CREATE FUNCTION dv_internal.lineage_node_name(p_kind text, p_ref bigint)
RETURNS text
LANGUAGE plpgsql STABLE
AS $$
-- PL/pgSQL rather than SQL: its plans are cached for the session, where a SQL function
-- with sub-selects (not inlinable) is planned again on every call. Names every object
-- with its schema, so it needs no pinned search_path.
DECLARE
  v text;
BEGIN
  CASE p_kind
    WHEN 'dataset_version' THEN SELECT d.name || '@v' || v2.id INTO v FROM dv.versions v2 JOIN dv.datasets d ON d.id = v2.dataset_id WHERE v2.id = p_ref;
    WHEN 'run' THEN SELECT coalesce(r.name, 'run') || ' #' || r.id INTO v FROM dv.runs r WHERE r.id = p_ref;
    WHEN 'model_version' THEN SELECT m.name || ' v' || mv.version INTO v FROM dv.model_versions mv JOIN dv.models m ON m.id = mv.model_id WHERE mv.id = p_ref;
    WHEN 'job' THEN SELECT j.namespace || ' ' || j.name INTO v FROM dv.jobs j WHERE j.id = p_ref;
    WHEN 'external_dataset' THEN SELECT x.namespace || ' ' || x.name INTO v FROM dv.external_datasets x WHERE x.id = p_ref;
    ELSE v := NULL;
  END CASE;
  RETURN v;
END
$$;
COMMENT ON FUNCTION dv_internal.lineage_node_name(text, bigint) IS 'Display name of a node (flights@v3, train #17, resnet v2, ...); NULL when the object does not exist.';

CREATE FUNCTION dv_internal.lineage_link(p_src_kind text, p_src bigint[], p_dst_kind text, p_dst bigint[], p_relation text, p_origin text DEFAULT 'auto')
RETURNS bigint
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- Set-based: adds the edges p_src[i] -> p_dst[i] (creating missing nodes), skipping
-- NULL ends and edges that exist. Returns how many edges were new.
DECLARE
  v_n bigint;
BEGIN
  -- Names by inline sub-selects (an index lookup in the one table of the node's kind),
  -- not one dv_internal.lineage_node_name call per node, nor joins the planner may turn
  -- into scans of whole tables for a handful of nodes.
  INSERT INTO dv.lineage_nodes (kind, ref_id, name)
  SELECT x.kind, x.ref_id,
         coalesce(CASE x.kind
                    WHEN 'dataset_version' THEN (SELECT ds.name || '@v' || v.id FROM dv.versions v JOIN dv.datasets ds ON ds.id = v.dataset_id WHERE v.id = x.ref_id)
                    WHEN 'run' THEN (SELECT coalesce(r.name, 'run') || ' #' || r.id FROM dv.runs r WHERE r.id = x.ref_id)
                    WHEN 'model_version' THEN (SELECT m.name || ' v' || mv.version FROM dv.model_versions mv JOIN dv.models m ON m.id = mv.model_id WHERE mv.id = x.ref_id)
                    WHEN 'job' THEN (SELECT j.namespace || ' ' || j.name FROM dv.jobs j WHERE j.id = x.ref_id)
                    WHEN 'external_dataset' THEN (SELECT xd.namespace || ' ' || xd.name FROM dv.external_datasets xd WHERE xd.id = x.ref_id)
                  END, x.kind || ' ' || x.ref_id)
  FROM (SELECT p_src_kind AS kind, s AS ref_id FROM unnest(p_src) s WHERE s IS NOT NULL
        UNION
        SELECT p_dst_kind, d FROM unnest(p_dst) d WHERE d IS NOT NULL) x
  WHERE NOT EXISTS (SELECT 1 FROM dv.lineage_nodes n WHERE n.kind = x.kind AND n.ref_id = x.ref_id)
  ON CONFLICT (kind, ref_id) DO NOTHING;

  INSERT INTO dv.lineage_edges (src, dst, relation, origin)
  SELECT DISTINCT s.id, d.id, p_relation, p_origin
  FROM unnest(p_src, p_dst) u(s, d)
  JOIN dv.lineage_nodes s ON s.kind = p_src_kind AND s.ref_id = u.s
  JOIN dv.lineage_nodes d ON d.kind = p_dst_kind AND d.ref_id = u.d
  WHERE s.id <> d.id
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;
COMMENT ON FUNCTION dv_internal.lineage_link(text, bigint[], text, bigint[], text, text) IS 'Adds lineage edges p_src[i] -> p_dst[i] in one statement, creating nodes as needed; returns the number of new edges.';

CREATE FUNCTION dv_internal.lineage_start(p_kind text, p_id bigint, p_allow_model boolean DEFAULT true)
RETURNS bigint[]
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The node ids a walk starts from: the node of (kind, id), or every version of a model
-- for kind model. Raises undefined_object when the object itself does not exist; an
-- existing object without edges gives an empty array.
DECLARE
  v_kind text := dv_internal.lineage_kind(p_kind, p_allow_model);
  v_ids bigint[];
BEGIN
  IF v_kind = 'model' THEN
    IF NOT EXISTS (SELECT 1 FROM dv.models m WHERE m.id = p_id) THEN
      RAISE EXCEPTION 'model % does not exist', p_id
        USING ERRCODE = 'undefined_object', HINT = 'List models with `pgdv model list` or SELECT id, name FROM dv.models';
    END IF;
    SELECT coalesce(array_agg(n.id), '{}') INTO v_ids
    FROM dv.model_versions mv JOIN dv.lineage_nodes n ON n.kind = 'model_version' AND n.ref_id = mv.id
    WHERE mv.model_id = p_id;
    RETURN v_ids;
  END IF;
  IF dv_internal.lineage_node_name(v_kind, p_id) IS NULL THEN
    RAISE EXCEPTION '% % does not exist', replace(v_kind, '_', ' '), p_id
      USING ERRCODE = 'undefined_object',
            HINT = 'Give an existing id; SELECT * FROM dv.lineage_node(kind, ref) resolves names like flights@v3 or resnet@production';
  END IF;
  SELECT coalesce(array_agg(n.id), '{}') INTO v_ids FROM dv.lineage_nodes n WHERE n.kind = v_kind AND n.ref_id = p_id;
  RETURN v_ids;
END
$$;
COMMENT ON FUNCTION dv_internal.lineage_start(text, bigint, boolean) IS 'Node ids a lineage walk starts from; raises undefined_object for an unknown object.';

CREATE FUNCTION dv_internal.lineage_walk(p_start bigint[], p_down boolean, p_max_depth integer, p_target bigint DEFAULT NULL)
RETURNS TABLE (node_id bigint, kind text, ref_id bigint, name text, depth integer, relation text, path text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
-- Breadth first, one set-based query per level. v_seen holds every node reached so
-- far; each level anti-joins against it (a hash anti-join), so each node is expanded
-- once however many paths lead to it, and cycles end. path is '>'-separated node keys
-- (kind:ref_id) from the start to the node. With p_target, stops at the level that
-- reaches it.
DECLARE
  v_seen bigint[] := p_start;
  v_front bigint[];
  v_front_paths text[];
  v_ids bigint[]; v_kinds text[]; v_refs bigint[]; v_names text[]; v_rels text[]; v_paths text[];
  v_depth integer := 0;
BEGIN
  IF p_max_depth IS NULL OR p_max_depth < 0 OR p_max_depth > 1000 THEN
    RAISE EXCEPTION 'depth % is out of range', p_max_depth
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Give a depth from 0 to 1000';
  END IF;
  SELECT array_agg(n.id ORDER BY n.id), array_agg(n.kind || ':' || n.ref_id ORDER BY n.id)
  INTO v_front, v_front_paths
  FROM dv.lineage_nodes n WHERE n.id = ANY (p_start);

  WHILE v_depth < p_max_depth AND coalesce(cardinality(v_front), 0) > 0 LOOP
    v_depth := v_depth + 1;
    IF p_down THEN
      SELECT array_agg(x.id), array_agg(x.kind), array_agg(x.ref_id), array_agg(x.name), array_agg(x.relation), array_agg(x.path)
      INTO v_ids, v_kinds, v_refs, v_names, v_rels, v_paths
      FROM (
        SELECT y.id, n.kind, n.ref_id, n.name, y.relation, v_front_paths[y.ord] || '>' || n.kind || ':' || n.ref_id AS path
        FROM (
          -- Deduplicated first, so the node table is read once per new node, not per edge.
          -- Sorted with the position of the path, not the path (long at depth).
          SELECT DISTINCT ON (e.dst) e.dst AS id, e.relation, f.ord::int AS ord
          FROM unnest(v_front) WITH ORDINALITY f(id, ord)
          JOIN dv.lineage_edges e ON e.src = f.id
          WHERE NOT EXISTS (SELECT 1 FROM unnest(v_seen) s(id) WHERE s.id = e.dst)
          ORDER BY e.dst, f.ord
        ) y
        -- A per-row index lookup (OFFSET 0 keeps it one): joined as a plain join, the
        -- planner may hash the whole node table for a frontier it cannot size.
        CROSS JOIN LATERAL (SELECT n0.kind, n0.ref_id, n0.name FROM dv.lineage_nodes n0 WHERE n0.id = y.id OFFSET 0) n
      ) x;
    ELSE
      SELECT array_agg(x.id), array_agg(x.kind), array_agg(x.ref_id), array_agg(x.name), array_agg(x.relation), array_agg(x.path)
      INTO v_ids, v_kinds, v_refs, v_names, v_rels, v_paths
      FROM (
        SELECT y.id, n.kind, n.ref_id, n.name, y.relation, v_front_paths[y.ord] || '>' || n.kind || ':' || n.ref_id AS path
        FROM (
          -- Deduplicated first, so the node table is read once per new node, not per edge.
          -- Sorted with the position of the path, not the path (long at depth).
          SELECT DISTINCT ON (e.src) e.src AS id, e.relation, f.ord::int AS ord
          FROM unnest(v_front) WITH ORDINALITY f(id, ord)
          JOIN dv.lineage_edges e ON e.dst = f.id
          WHERE NOT EXISTS (SELECT 1 FROM unnest(v_seen) s(id) WHERE s.id = e.src)
          ORDER BY e.src, f.ord
        ) y
        -- A per-row index lookup (OFFSET 0 keeps it one): joined as a plain join, the
        -- planner may hash the whole node table for a frontier it cannot size.
        CROSS JOIN LATERAL (SELECT n0.kind, n0.ref_id, n0.name FROM dv.lineage_nodes n0 WHERE n0.id = y.id OFFSET 0) n
      ) x;
    END IF;
    EXIT WHEN v_ids IS NULL;
    -- Returned level by level: collecting every level into arrays (a || b copies the
    -- whole array) made a walk of many levels and long paths quadratic.
    RETURN QUERY SELECT u.id, u.kind, u.ref_id, u.name, v_depth, u.rel, u.path
                 FROM unnest(v_ids, v_kinds, v_refs, v_names, v_rels, v_paths) u(id, kind, ref_id, name, rel, path);
    EXIT WHEN p_target IS NOT NULL AND p_target = ANY (v_ids);
    v_seen := v_seen || v_ids;
    v_front := v_ids;
    v_front_paths := v_paths;
  END LOOP;
END
$$;
COMMENT ON FUNCTION dv_internal.lineage_walk(bigint[], boolean, integer, bigint) IS 'Breadth-first lineage walk from node ids, up or down, visiting each node once (cycle-safe, depth-limited).';

-- ---------------------------------------------------------------------------
-- Triggers that keep the graph in step with the catalog
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv_internal.lineage_on_versions()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Statement level: versions that are committed by this statement (inserted committed,
-- or pending -> committed) get derived_from edges from every parent.
DECLARE
  v_src bigint[];
  v_dst bigint[];
BEGIN
  IF TG_OP = 'INSERT' THEN
    SELECT array_agg(p.parent), array_agg(p.child) INTO v_src, v_dst FROM (
      SELECT n.parent_id AS parent, n.id AS child FROM new_rows n WHERE n.status = 'committed' AND n.parent_id IS NOT NULL
      UNION
      SELECT vp.parent_id, vp.version_id FROM new_rows n JOIN dv.version_parents vp ON vp.version_id = n.id WHERE n.status = 'committed') p;
  ELSE
    SELECT array_agg(p.parent), array_agg(p.child) INTO v_src, v_dst FROM (
      SELECT n.parent_id AS parent, n.id AS child FROM new_rows n JOIN old_rows o ON o.id = n.id
      WHERE n.status = 'committed' AND o.status <> 'committed' AND n.parent_id IS NOT NULL
      UNION
      SELECT vp.parent_id, vp.version_id FROM new_rows n JOIN old_rows o ON o.id = n.id JOIN dv.version_parents vp ON vp.version_id = n.id
      WHERE n.status = 'committed' AND o.status <> 'committed') p;
  END IF;
  IF v_src IS NOT NULL THEN
    PERFORM dv_internal.lineage_link('dataset_version', v_src, 'dataset_version', v_dst, 'derived_from');
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION dv_internal.lineage_on_versions() IS 'Trigger: committed versions get derived_from lineage edges from their parents.';

CREATE TRIGGER lineage_insert AFTER INSERT ON dv.versions
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dv_internal.lineage_on_versions();
CREATE TRIGGER lineage_update AFTER UPDATE ON dv.versions
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dv_internal.lineage_on_versions();

CREATE FUNCTION dv_internal.lineage_on_version_parents()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Merge parents recorded after their version was committed.
DECLARE
  v_src bigint[];
  v_dst bigint[];
BEGIN
  SELECT array_agg(n.parent_id), array_agg(n.version_id) INTO v_src, v_dst
  FROM new_rows n JOIN dv.versions v ON v.id = n.version_id WHERE v.status = 'committed';
  IF v_src IS NOT NULL THEN
    PERFORM dv_internal.lineage_link('dataset_version', v_src, 'dataset_version', v_dst, 'derived_from');
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION dv_internal.lineage_on_version_parents() IS 'Trigger: parents of committed versions become derived_from lineage edges.';

CREATE TRIGGER lineage_insert AFTER INSERT ON dv.version_parents
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dv_internal.lineage_on_version_parents();

CREATE FUNCTION dv_internal.lineage_on_run_datasets()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_a bigint[];
  v_b bigint[];
BEGIN
  SELECT array_agg(n.version_id), array_agg(n.run_id) INTO v_a, v_b FROM new_rows n WHERE n.direction = 'input';
  IF v_a IS NOT NULL THEN
    PERFORM dv_internal.lineage_link('dataset_version', v_a, 'run', v_b, 'used_by');
  END IF;
  SELECT array_agg(n.run_id), array_agg(n.version_id) INTO v_a, v_b FROM new_rows n WHERE n.direction = 'output';
  IF v_a IS NOT NULL THEN
    PERFORM dv_internal.lineage_link('run', v_a, 'dataset_version', v_b, 'produced');
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION dv_internal.lineage_on_run_datasets() IS 'Trigger: run inputs become used_by edges, run outputs produced edges.';

CREATE TRIGGER lineage_insert AFTER INSERT ON dv.run_datasets
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dv_internal.lineage_on_run_datasets();

CREATE FUNCTION dv_internal.lineage_on_model_versions()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_a bigint[];
  v_b bigint[];
BEGIN
  SELECT array_agg(n.run_id), array_agg(n.id) INTO v_a, v_b FROM new_rows n WHERE n.run_id IS NOT NULL;
  IF v_a IS NOT NULL THEN
    PERFORM dv_internal.lineage_link('run', v_a, 'model_version', v_b, 'produced');
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION dv_internal.lineage_on_model_versions() IS 'Trigger: a model version gets a produced edge from its run.';

CREATE TRIGGER lineage_insert AFTER INSERT ON dv.model_versions
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dv_internal.lineage_on_model_versions();

CREATE FUNCTION dv_internal.lineage_on_runs()
RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_a bigint[];
  v_b bigint[];
BEGIN
  SELECT array_agg(n.job_id), array_agg(n.id) INTO v_a, v_b FROM new_rows n WHERE n.job_id IS NOT NULL;
  IF v_a IS NOT NULL THEN
    PERFORM dv_internal.lineage_link('job', v_a, 'run', v_b, 'ran');
  END IF;
  RETURN NULL;
END
$$;
COMMENT ON FUNCTION dv_internal.lineage_on_runs() IS 'Trigger: a run of a job gets a ran edge from the job.';

CREATE TRIGGER lineage_insert AFTER INSERT ON dv.runs
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION dv_internal.lineage_on_runs();

CREATE FUNCTION dv_internal.model_versions_guard()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- What a model version is (model, number, run, artifact) never changes.
BEGIN
  IF NEW.model_id <> OLD.model_id OR NEW.version <> OLD.version OR NEW.run_id IS DISTINCT FROM OLD.run_id
     OR NEW.artifact_hash IS DISTINCT FROM OLD.artifact_hash OR NEW.artifact_uri IS DISTINCT FROM OLD.artifact_uri THEN
    RAISE EXCEPTION 'model version % cannot change', OLD.id
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Register a new model version instead';
  END IF;
  RETURN NEW;
END
$$;
COMMENT ON FUNCTION dv_internal.model_versions_guard() IS 'Trigger: model versions are immutable (model, number, run, artifact).';

CREATE TRIGGER guard BEFORE UPDATE ON dv.model_versions
  FOR EACH ROW EXECUTE FUNCTION dv_internal.model_versions_guard();

CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON dv.experiments
  FOR EACH ROW EXECUTE FUNCTION dv_internal.audit();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON dv.models
  FOR EACH ROW EXECUTE FUNCTION dv_internal.audit();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON dv.model_versions
  FOR EACH ROW EXECUTE FUNCTION dv_internal.audit();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON dv.model_aliases
  FOR EACH ROW EXECUTE FUNCTION dv_internal.audit();

-- ---------------------------------------------------------------------------
-- Views
-- ---------------------------------------------------------------------------

CREATE VIEW dv.experiment_overview AS
SELECT e.name,
       e.description,
       e.tags,
       (SELECT count(*) FROM dv.runs r WHERE r.experiment_id = e.id) AS runs,
       (SELECT count(*) FROM dv.runs r WHERE r.experiment_id = e.id AND r.status = 'running') AS running,
       (SELECT max(r.started_at) FROM dv.runs r WHERE r.experiment_id = e.id) AS last_run_at,
       e.metadata,
       e.created_by,
       e.created_at,
       e.id
FROM dv.experiments e;
COMMENT ON VIEW dv.experiment_overview IS 'One row per experiment with its run counts and latest run start.';

CREATE VIEW dv.run_overview AS
SELECT r.id,
       e.name AS experiment,
       r.name,
       r.status,
       r.params,
       coalesce((SELECT jsonb_object_agg(m.key, m.value)
                 FROM (SELECT DISTINCT ON (m.key) m.key, m.value FROM dv.run_metrics m WHERE m.run_id = r.id ORDER BY m.key, m.step DESC) m),
                '{}'::jsonb) AS metrics,
       r.code_ref,
       r.tags,
       (SELECT count(*) FROM dv.run_datasets x WHERE x.run_id = r.id AND x.direction = 'input') AS inputs,
       (SELECT count(*) FROM dv.run_datasets x WHERE x.run_id = r.id AND x.direction = 'output')
         + (SELECT count(*) FROM dv.model_versions mv WHERE mv.run_id = r.id) AS outputs,
       j.namespace AS job_namespace,
       j.name AS job_name,
       r.external_id,
       r.note,
       r.metadata,
       r.started_by,
       r.started_at,
       r.finished_by,
       r.finished_at
FROM dv.runs r
LEFT JOIN dv.experiments e ON e.id = r.experiment_id
LEFT JOIN dv.jobs j ON j.id = r.job_id;
COMMENT ON VIEW dv.run_overview IS 'One row per run: experiment, status, params, latest value of each metric, counts of inputs and outputs, who and when.';

CREATE VIEW dv.model_version_overview AS
SELECT mv.id,
       m.name AS model,
       mv.version,
       coalesce((SELECT array_agg(a.alias ORDER BY a.alias) FROM dv.model_aliases a WHERE a.model_version_id = mv.id), '{}'::text[]) AS aliases,
       mv.run_id,
       mv.artifact_hash,
       mv.artifact_uri,
       mv.metrics,
       mv.description,
       mv.metadata,
       mv.created_by,
       mv.created_at
FROM dv.model_versions mv
JOIN dv.models m ON m.id = mv.model_id;
COMMENT ON VIEW dv.model_version_overview IS 'One row per model version: model, number, aliases pointing at it, run, artifact and metrics.';

CREATE VIEW dv.model_overview AS
SELECT m.name,
       m.description,
       (SELECT count(*) FROM dv.model_versions mv WHERE mv.model_id = m.id) AS versions,
       (SELECT max(mv.version) FROM dv.model_versions mv WHERE mv.model_id = m.id) AS latest_version,
       coalesce((SELECT jsonb_object_agg(a.alias, mv.version ORDER BY a.alias) FROM dv.model_aliases a JOIN dv.model_versions mv ON mv.id = a.model_version_id
                 WHERE a.model_id = m.id), '{}'::jsonb) AS aliases,
       m.metadata,
       m.created_by,
       m.created_at,
       m.id
FROM dv.models m;
COMMENT ON VIEW dv.model_overview IS 'One row per model: number of versions, the latest, and where each alias points (alias -> version number).';

CREATE VIEW dv.lineage_edge_overview AS
SELECT s.kind AS src_kind, s.ref_id AS src_id, s.name AS src_name,
       e.relation,
       d.kind AS dst_kind, d.ref_id AS dst_id, d.name AS dst_name,
       e.origin, e.created_by, e.created_at
FROM dv.lineage_edges e
JOIN dv.lineage_nodes s ON s.id = e.src
JOIN dv.lineage_nodes d ON d.id = e.dst;
COMMENT ON VIEW dv.lineage_edge_overview IS 'Lineage edges with both ends spelled out (kind, id, name).';

-- ---------------------------------------------------------------------------
-- API: experiments and runs
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv.experiment_create(p_name text, p_description text DEFAULT NULL, p_tags text[] DEFAULT '{}', p_metadata jsonb DEFAULT '{}'::jsonb)
RETURNS SETOF dv.experiment_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  PERFORM dv_internal.check_name('experiment', p_name);
  BEGIN
    INSERT INTO dv.experiments (name, description, tags, metadata)
    VALUES (p_name, p_description, coalesce(p_tags, '{}'), coalesce(p_metadata, '{}'::jsonb))
    RETURNING id INTO v_id;
  EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'experiment "%" already exists', p_name
      USING ERRCODE = 'duplicate_object', HINT = 'Choose another name, or start runs in it with `pgdv run start`';
  END;
  RETURN QUERY SELECT * FROM dv.experiment_overview o WHERE o.id = v_id;
END
$$;
COMMENT ON FUNCTION dv.experiment_create(text, text, text[], jsonb) IS 'Creates an experiment, a named group of runs.
Example: SELECT * FROM dv.experiment_create(''resnet'', ''image classifier'');';

CREATE FUNCTION dv_internal.experiment_id(p_name text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  SELECT e.id INTO v_id FROM dv.experiments e WHERE e.name = p_name;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'experiment "%" does not exist', p_name
      USING ERRCODE = 'undefined_object', HINT = 'Create it with `pgdv experiment create` or SELECT * FROM dv.experiment_create(name)';
  END IF;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION dv_internal.experiment_id(text) IS 'The id of the named experiment; raises undefined_object when there is none.';

CREATE FUNCTION dv_internal.run_row(p_run bigint, p_lock boolean DEFAULT false)
RETURNS dv.runs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v dv.runs;
BEGIN
  IF p_lock THEN
    SELECT * INTO v FROM dv.runs r WHERE r.id = p_run FOR UPDATE;
  ELSE
    SELECT * INTO v FROM dv.runs r WHERE r.id = p_run;
  END IF;
  IF v.id IS NULL THEN
    RAISE EXCEPTION 'run % does not exist', p_run
      USING ERRCODE = 'undefined_object', HINT = 'List runs with `pgdv run list` or SELECT id, name, status FROM dv.run_overview';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION dv_internal.run_row(bigint, boolean) IS 'The row of a run (optionally locked); raises undefined_object when there is none.';

CREATE FUNCTION dv_internal.run_require_running(p_run bigint, p_what text)
RETURNS dv.runs
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v dv.runs := dv_internal.run_row(p_run, true);
BEGIN
  IF v.status <> 'running' THEN
    RAISE EXCEPTION 'run % already finished (% at %); cannot %', p_run, v.status, v.finished_at, p_what
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'A run is finished exactly once; start a new run instead';
  END IF;
  RETURN v;
END
$$;
COMMENT ON FUNCTION dv_internal.run_require_running(bigint, text) IS 'Locks a run and raises object_not_in_prerequisite_state unless it is still running.';

CREATE FUNCTION dv_internal.pin_datasets(p_run bigint, p_direction text, p_refs text[])
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- Each entry is DATASET or DATASET@REF (REF: branch, tag, version id, REF~N; default
-- main). Resolved now and stored as version id + content hash, so later moves of the
-- ref do not change what the run read.
DECLARE
  v_entry text;
  v_dataset text;
  v_ref text;
  v_version dv.versions;
  v_name text;
BEGIN
  FOREACH v_entry IN ARRAY coalesce(p_refs, '{}') LOOP
    IF v_entry IS NULL OR btrim(v_entry) = '' THEN
      RAISE EXCEPTION 'empty % dataset in the list for run %', p_direction, p_run
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Give DATASET or DATASET@REF, e.g. flights@main or flights@v3';
    END IF;
    v_dataset := split_part(v_entry, '@', 1);
    v_ref := CASE WHEN position('@' IN v_entry) > 0 THEN substr(v_entry, position('@' IN v_entry) + 1) ELSE 'main' END;
    SELECT * INTO v_version FROM dv.versions v WHERE v.id = dv.resolve_ref(v_dataset, v_ref);
    SELECT d.name INTO v_name FROM dv.datasets d WHERE d.id = v_version.dataset_id;
    INSERT INTO dv.run_datasets (run_id, direction, version_id, dataset_id, dataset_name, ref, content_hash)
    VALUES (p_run, p_direction, v_version.id, v_version.dataset_id, v_name, v_ref, v_version.content_hash)
    ON CONFLICT DO NOTHING;
  END LOOP;
END
$$;
COMMENT ON FUNCTION dv_internal.pin_datasets(bigint, text, text[]) IS 'Resolves DATASET@REF entries and records them as a run''s inputs or outputs (exact version id and content hash).';

CREATE FUNCTION dv.run_start(
  p_experiment text,
  p_name text DEFAULT NULL,
  p_params jsonb DEFAULT '{}'::jsonb,
  p_inputs text[] DEFAULT '{}',
  p_code_ref text DEFAULT NULL,
  p_tags text[] DEFAULT '{}',
  p_metadata jsonb DEFAULT '{}'::jsonb
)
RETURNS SETOF dv.run_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Starts a run in an experiment and pins its inputs, in one transaction: an unknown
-- dataset or ref leaves no run behind.
DECLARE
  v_experiment bigint := dv_internal.experiment_id(p_experiment);
  v_run bigint;
BEGIN
  IF p_params IS NOT NULL AND jsonb_typeof(p_params) <> 'object' THEN
    RAISE EXCEPTION 'params of a run must be a JSON object, got %', jsonb_typeof(p_params)
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass e.g. {"lr": 0.01, "epochs": 10}';
  END IF;
  INSERT INTO dv.runs (experiment_id, name, params, code_ref, tags, metadata)
  VALUES (v_experiment, p_name, coalesce(p_params, '{}'::jsonb), p_code_ref, coalesce(p_tags, '{}'), coalesce(p_metadata, '{}'::jsonb))
  RETURNING id INTO v_run;
  PERFORM dv_internal.pin_datasets(v_run, 'input', p_inputs);
  RETURN QUERY SELECT * FROM dv.run_overview o WHERE o.id = v_run;
END
$$;
COMMENT ON FUNCTION dv.run_start(text, text, jsonb, text[], text, text[], jsonb) IS 'Starts a run in an experiment; inputs (DATASET or DATASET@REF) are pinned to exact version ids and content hashes.
Example: SELECT id FROM dv.run_start(''resnet'', ''train'', ''{"lr":0.01}'', ARRAY[''images@v1.0'', ''labels@main'']);';

CREATE FUNCTION dv.run_add_inputs(p_run bigint, p_inputs text[])
RETURNS SETOF dv.run_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  PERFORM dv_internal.run_require_running(p_run, 'add inputs');
  PERFORM dv_internal.pin_datasets(p_run, 'input', p_inputs);
  RETURN QUERY SELECT * FROM dv.run_overview o WHERE o.id = p_run;
END
$$;
COMMENT ON FUNCTION dv.run_add_inputs(bigint, text[]) IS 'Pins more inputs (DATASET or DATASET@REF) of a running run.';

CREATE FUNCTION dv.run_log_params(p_run bigint, p_params jsonb)
RETURNS SETOF dv.run_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_params IS NULL OR jsonb_typeof(p_params) <> 'object' THEN
    RAISE EXCEPTION 'params of run % must be a JSON object', p_run
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass e.g. {"lr": 0.01}';
  END IF;
  PERFORM dv_internal.run_require_running(p_run, 'log params');
  UPDATE dv.runs r SET params = r.params || p_params WHERE r.id = p_run;
  RETURN QUERY SELECT * FROM dv.run_overview o WHERE o.id = p_run;
END
$$;
COMMENT ON FUNCTION dv.run_log_params(bigint, jsonb) IS 'Adds or replaces params of a running run (a JSON object merged into the params).';

CREATE FUNCTION dv.run_log_metrics(p_run bigint, p_metrics jsonb, p_step bigint DEFAULT NULL)
RETURNS TABLE (key text, step bigint, value double precision)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
-- Every value must be a JSON number; one bad value rejects the whole call. Without a
-- step each key gets its next step (0, 1, 2, ...); logging a step again replaces it.
DECLARE
  v_bad record;
BEGIN
  IF p_metrics IS NULL OR jsonb_typeof(p_metrics) <> 'object' THEN
    RAISE EXCEPTION 'metrics of run % must be a JSON object of numbers', p_run
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass e.g. {"loss": 0.31, "acc": 0.92}';
  END IF;
  SELECT m.key, m.value INTO v_bad FROM jsonb_each(p_metrics) m WHERE jsonb_typeof(m.value) <> 'number' LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'metric "%" of run % is not a number: %', v_bad.key, p_run, v_bad.value
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Metric values are numbers, e.g. 0.31';
  END IF;
  IF p_step IS NOT NULL AND p_step < 0 THEN
    RAISE EXCEPTION 'step % of run % is negative', p_step, p_run USING ERRCODE = 'invalid_parameter_value', HINT = 'Steps count from 0';
  END IF;
  PERFORM dv_internal.run_require_running(p_run, 'log metrics');
  RETURN QUERY
  INSERT INTO dv.run_metrics AS t (run_id, key, step, value)
  SELECT p_run, m.key,
         coalesce(p_step, (SELECT max(x.step) + 1 FROM dv.run_metrics x WHERE x.run_id = p_run AND x.key = m.key), 0),
         (m.value #>> '{}')::double precision
  FROM jsonb_each(p_metrics) m
  ON CONFLICT (run_id, key, step) DO UPDATE SET value = excluded.value, at = excluded.at
  RETURNING t.key, t.step, t.value;
END
$$;
COMMENT ON FUNCTION dv.run_log_metrics(bigint, jsonb, bigint) IS 'Logs metrics of a running run: a JSON object of numbers at a step (default: each key''s next step).
Example: SELECT * FROM dv.run_log_metrics(17, ''{"loss":0.31,"acc":0.92}'', 5);';

CREATE FUNCTION dv.run_finish(p_run bigint, p_status text DEFAULT 'succeeded', p_outputs text[] DEFAULT '{}', p_note text DEFAULT NULL)
RETURNS SETOF dv.run_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Exactly once: a second finish raises and changes nothing.
BEGIN
  IF p_status IS NULL OR p_status NOT IN ('succeeded', 'failed', 'killed') THEN
    RAISE EXCEPTION 'run status "%" is not a final status', p_status
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Finish a run as succeeded, failed or killed';
  END IF;
  PERFORM dv_internal.run_require_running(p_run, 'finish it again');
  PERFORM dv_internal.pin_datasets(p_run, 'output', p_outputs);
  UPDATE dv.runs r SET status = p_status, finished_at = clock_timestamp(), finished_by = session_user, note = coalesce(p_note, r.note)
  WHERE r.id = p_run;
  RETURN QUERY SELECT * FROM dv.run_overview o WHERE o.id = p_run;
END
$$;
COMMENT ON FUNCTION dv.run_finish(bigint, text, text[], text) IS 'Finishes a running run, exactly once, as succeeded, failed or killed; outputs (DATASET@REF) are pinned like inputs.
Example: SELECT status FROM dv.run_finish(17, ''succeeded'', ARRAY[''predictions@main'']);';

CREATE FUNCTION dv.run_inputs(p_run bigint)
RETURNS TABLE (dataset text, dataset_kind text, ref text, version_id bigint, content_hash text, dataset_exists boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  PERFORM dv_internal.run_row(p_run);
  RETURN QUERY
  SELECT x.dataset_name, d.kind, x.ref, x.version_id, x.content_hash, d.id IS NOT NULL
  FROM dv.run_datasets x LEFT JOIN dv.datasets d ON d.id = x.dataset_id
  WHERE x.run_id = p_run AND x.direction = 'input'
  ORDER BY x.dataset_name, x.version_id;
END
$$;
COMMENT ON FUNCTION dv.run_inputs(bigint) IS 'The exact dataset versions a run read: dataset, kind, ref as given, version id and content hash. What `pgdv run reproduce` checks out.';

CREATE FUNCTION dv.run_outputs(p_run bigint)
RETURNS TABLE (kind text, id bigint, name text, content_hash text, artifact_uri text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  PERFORM dv_internal.run_row(p_run);
  RETURN QUERY
  SELECT 'dataset_version'::text, x.version_id, x.dataset_name || '@v' || x.version_id, x.content_hash, NULL::text
  FROM dv.run_datasets x WHERE x.run_id = p_run AND x.direction = 'output'
  UNION ALL
  SELECT 'model_version'::text, mv.id, m.name || ' v' || mv.version, mv.artifact_hash, mv.artifact_uri
  FROM dv.model_versions mv JOIN dv.models m ON m.id = mv.model_id WHERE mv.run_id = p_run
  ORDER BY 1, 2;
END
$$;
COMMENT ON FUNCTION dv.run_outputs(bigint) IS 'What a run produced: dataset versions and model versions, with content hashes.';

CREATE FUNCTION dv.run_metric_history(p_run bigint, p_key text DEFAULT NULL)
RETURNS TABLE (key text, step bigint, value double precision, at timestamptz)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  PERFORM dv_internal.run_row(p_run);
  RETURN QUERY SELECT m.key, m.step, m.value, m.at FROM dv.run_metrics m
  WHERE m.run_id = p_run AND (p_key IS NULL OR m.key = p_key) ORDER BY m.key, m.step;
END
$$;
COMMENT ON FUNCTION dv.run_metric_history(bigint, text) IS 'Every logged value of a run''s metrics (or of one metric), by key and step.';

CREATE FUNCTION dv.run_compare(p_a bigint, p_b bigint)
RETURNS TABLE (section text, key text, a text, b text, same boolean)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
-- Params, latest metrics and inputs of two runs side by side.
DECLARE
  v_a dv.run_overview;
  v_b dv.run_overview;
BEGIN
  PERFORM dv_internal.run_row(p_a);
  PERFORM dv_internal.run_row(p_b);
  SELECT * INTO v_a FROM dv.run_overview o WHERE o.id = p_a;
  SELECT * INTO v_b FROM dv.run_overview o WHERE o.id = p_b;
  RETURN QUERY
  SELECT 'run'::text, f.k, f.x, f.y, f.x IS NOT DISTINCT FROM f.y
  FROM (VALUES ('experiment', v_a.experiment, v_b.experiment), ('name', v_a.name, v_b.name), ('status', v_a.status, v_b.status),
               ('code_ref', v_a.code_ref, v_b.code_ref)) f(k, x, y)
  UNION ALL
  (SELECT 'param'::text, k.k, v_a.params ->> k.k, v_b.params ->> k.k, (v_a.params -> k.k) IS NOT DISTINCT FROM (v_b.params -> k.k)
   FROM (SELECT jsonb_object_keys(v_a.params) UNION SELECT jsonb_object_keys(v_b.params)) k(k) ORDER BY 2)
  UNION ALL
  (SELECT 'metric'::text, k.k, v_a.metrics ->> k.k, v_b.metrics ->> k.k, (v_a.metrics -> k.k) IS NOT DISTINCT FROM (v_b.metrics -> k.k)
   FROM (SELECT jsonb_object_keys(v_a.metrics) UNION SELECT jsonb_object_keys(v_b.metrics)) k(k) ORDER BY 2)
  UNION ALL
  (SELECT 'input'::text, coalesce(ia.dataset_name, ib.dataset_name),
          CASE WHEN ia.version_id IS NOT NULL THEN 'v' || ia.version_id END,
          CASE WHEN ib.version_id IS NOT NULL THEN 'v' || ib.version_id END,
          ia.version_id IS NOT DISTINCT FROM ib.version_id
   FROM (SELECT * FROM dv.run_datasets x WHERE x.run_id = p_a AND x.direction = 'input') ia
   FULL JOIN (SELECT * FROM dv.run_datasets x WHERE x.run_id = p_b AND x.direction = 'input') ib ON ib.dataset_id = ia.dataset_id
   ORDER BY 2);
END
$$;
COMMENT ON FUNCTION dv.run_compare(bigint, bigint) IS 'Two runs side by side: run fields, params, latest metrics and input versions, with same = true where they agree.';

-- ---------------------------------------------------------------------------
-- API: model registry
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv_internal.model_id(p_name text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  SELECT m.id INTO v_id FROM dv.models m WHERE m.name = p_name;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'model "%" does not exist', p_name
      USING ERRCODE = 'undefined_object', HINT = 'List models with `pgdv model list`; `pgdv model register` creates one';
  END IF;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION dv_internal.model_id(text) IS 'The id of the named model; raises undefined_object when there is none.';

CREATE FUNCTION dv.model_version_id(p_model text, p_ref text)
RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- p_ref: a version number (3 or v3), an alias (production), or latest.
DECLARE
  v_model bigint := dv_internal.model_id(p_model);
  v_id bigint;
BEGIN
  IF p_ref ~ '^v?[0-9]{1,9}$' THEN
    SELECT mv.id INTO v_id FROM dv.model_versions mv WHERE mv.model_id = v_model AND mv.version = ltrim(p_ref, 'v')::int;
  ELSIF p_ref = 'latest' THEN
    SELECT mv.id INTO v_id FROM dv.model_versions mv WHERE mv.model_id = v_model ORDER BY mv.version DESC LIMIT 1;
  ELSE
    SELECT a.model_version_id INTO v_id FROM dv.model_aliases a WHERE a.model_id = v_model AND a.alias = p_ref;
  END IF;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'model "%" has no version or alias "%"', p_model, p_ref
      USING ERRCODE = 'undefined_object', HINT = format('See its versions and aliases with `pgdv model show %s`', p_model);
  END IF;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION dv.model_version_id(text, text) IS 'The global id of a model version named by number (3 or v3), alias (production) or latest.
Example: SELECT dv.model_version_id(''resnet'', ''production'');';

CREATE FUNCTION dv.model_register(
  p_model text,
  p_run bigint DEFAULT NULL,
  p_artifact_hash text DEFAULT NULL,
  p_artifact_uri text DEFAULT NULL,
  p_metrics jsonb DEFAULT NULL,
  p_description text DEFAULT NULL,
  p_metadata jsonb DEFAULT '{}'::jsonb
)
RETURNS SETOF dv.model_version_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Creates the model on first use. The version number is the model's next; the model
-- row is locked so concurrent registrations number 1, 2, 3 without gaps or clashes.
-- Metrics default to the run's latest metrics.
DECLARE
  v_model bigint;
  v_run dv.runs;
  v_hash text := lower(p_artifact_hash);
  v_id bigint;
BEGIN
  PERFORM dv_internal.check_name('model', p_model);
  IF v_hash IS NOT NULL THEN
    v_hash := regexp_replace(v_hash, '^sha256:', '');
    IF v_hash !~ '^[0-9a-f]{64}$' THEN
      RAISE EXCEPTION 'artifact hash "%" is not a SHA-256', p_artifact_hash
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Give 64 hex digits (optionally prefixed sha256:), e.g. from `sha256sum` or `pgdv blob put`';
    END IF;
  END IF;
  IF p_metrics IS NOT NULL AND (jsonb_typeof(p_metrics) <> 'object' OR EXISTS (SELECT 1 FROM jsonb_each(p_metrics) m WHERE jsonb_typeof(m.value) <> 'number')) THEN
    RAISE EXCEPTION 'metrics of a model version must be a JSON object of numbers, got %', p_metrics
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass e.g. {"acc": 0.92}';
  END IF;
  IF p_run IS NOT NULL THEN
    v_run := dv_internal.run_row(p_run);
    IF v_run.status IN ('failed', 'killed') THEN
      RAISE EXCEPTION 'run % %; a model version cannot come from it', p_run, v_run.status
        USING ERRCODE = 'object_not_in_prerequisite_state', HINT = 'Register models from running or succeeded runs';
    END IF;
  END IF;
  INSERT INTO dv.models (name) VALUES (p_model) ON CONFLICT (name) DO NOTHING;
  SELECT m.id INTO v_model FROM dv.models m WHERE m.name = p_model FOR UPDATE;
  INSERT INTO dv.model_versions (model_id, version, run_id, artifact_hash, artifact_uri, metrics, description, metadata)
  SELECT v_model, coalesce(max(mv.version), 0) + 1, p_run, v_hash, p_artifact_uri,
         coalesce(p_metrics, (SELECT o.metrics FROM dv.run_overview o WHERE o.id = p_run), '{}'::jsonb),
         p_description, coalesce(p_metadata, '{}'::jsonb)
  FROM dv.model_versions mv WHERE mv.model_id = v_model
  RETURNING id INTO v_id;
  RETURN QUERY SELECT * FROM dv.model_version_overview o WHERE o.id = v_id;
END
$$;
COMMENT ON FUNCTION dv.model_register(text, bigint, text, text, jsonb, text, jsonb) IS 'Registers the next version of a model (created on first use), produced by a run, with an artifact (SHA-256 + URI) and metrics (default: the run''s latest).
Example: SELECT id, version FROM dv.model_register(''resnet'', p_run => 17, p_artifact_hash => ''9f86...'', p_artifact_uri => ''s3://models/resnet/17.pt'');';

CREATE FUNCTION dv.model_promote(p_model text, p_alias text, p_version_id bigint, p_reason text DEFAULT NULL)
RETURNS SETOF dv.model_version_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_model bigint := dv_internal.model_id(p_model);
  v_owner text;
  v_old bigint;
BEGIN
  PERFORM dv_internal.check_ref_name('alias', p_alias);
  IF p_alias = 'latest' THEN
    RAISE EXCEPTION 'alias name "latest" is reserved' USING ERRCODE = 'invalid_name', HINT = 'latest always means the newest version; choose another alias';
  END IF;
  SELECT m.name INTO v_owner FROM dv.model_versions mv JOIN dv.models m ON m.id = mv.model_id WHERE mv.id = p_version_id;
  IF v_owner IS NULL THEN
    RAISE EXCEPTION 'model version % does not exist', p_version_id
      USING ERRCODE = 'undefined_object', HINT = format('See the versions of %s with `pgdv model show %s`', p_model, p_model);
  ELSIF v_owner <> p_model THEN
    RAISE EXCEPTION 'model version % belongs to model "%", not "%"', p_version_id, v_owner, p_model
      USING ERRCODE = 'invalid_parameter_value', HINT = 'An alias points at a version of its own model';
  END IF;
  PERFORM 1 FROM dv.models m WHERE m.id = v_model FOR UPDATE;
  SELECT a.model_version_id INTO v_old FROM dv.model_aliases a WHERE a.model_id = v_model AND a.alias = p_alias;
  IF v_old IS NOT DISTINCT FROM p_version_id THEN
    RETURN QUERY SELECT * FROM dv.model_version_overview o WHERE o.id = p_version_id;
    RETURN;
  END IF;
  INSERT INTO dv.model_aliases (model_id, alias, model_version_id) VALUES (v_model, p_alias, p_version_id)
  ON CONFLICT (model_id, alias) DO UPDATE SET model_version_id = excluded.model_version_id, updated_by = session_user, updated_at = now();
  INSERT INTO dv.model_alias_log (model_id, alias, action, old_version_id, new_version_id, reason)
  VALUES (v_model, p_alias, 'promote', v_old, p_version_id, p_reason);
  RETURN QUERY SELECT * FROM dv.model_version_overview o WHERE o.id = p_version_id;
END
$$;
COMMENT ON FUNCTION dv.model_promote(text, text, bigint, text) IS 'Points an alias (production, staging, champion, ...) of a model at one of its versions (global id); recorded in the alias history. Promoting to where it already points changes nothing.
Example: SELECT * FROM dv.model_promote(''resnet'', ''production'', dv.model_version_id(''resnet'', ''3''));';

CREATE FUNCTION dv.model_rollback(p_model text, p_alias text, p_reason text DEFAULT NULL)
RETURNS SETOF dv.model_version_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- Undoes the latest promote of the alias that is not undone yet: the alias goes back to
-- where that promote found it. Rolling back again undoes the promote before it.
DECLARE
  v_model bigint := dv_internal.model_id(p_model);
  v_entry dv.model_alias_log;
  v_current bigint;
BEGIN
  PERFORM 1 FROM dv.models m WHERE m.id = v_model FOR UPDATE;
  SELECT a.model_version_id INTO v_current FROM dv.model_aliases a WHERE a.model_id = v_model AND a.alias = p_alias;
  IF v_current IS NULL THEN
    RAISE EXCEPTION 'model "%" has no alias "%"', p_model, p_alias
      USING ERRCODE = 'undefined_object', HINT = format('See its aliases with `pgdv model show %s`', p_model);
  END IF;
  SELECT * INTO v_entry FROM dv.model_alias_log l
  WHERE l.model_id = v_model AND l.alias = p_alias AND l.action = 'promote' AND NOT l.rolled_back
  ORDER BY l.id DESC LIMIT 1;
  IF v_entry.id IS NULL OR v_entry.old_version_id IS NULL THEN
    RAISE EXCEPTION 'alias "%" of model "%" has no earlier version to roll back to', p_alias, p_model
      USING ERRCODE = 'object_not_in_prerequisite_state', HINT = format('See SELECT * FROM dv.model_alias_history(%L); promote a version explicitly instead', p_model);
  END IF;
  UPDATE dv.model_alias_log l SET rolled_back = true WHERE l.id = v_entry.id;
  UPDATE dv.model_aliases a SET model_version_id = v_entry.old_version_id, updated_by = session_user, updated_at = now()
  WHERE a.model_id = v_model AND a.alias = p_alias;
  INSERT INTO dv.model_alias_log (model_id, alias, action, old_version_id, new_version_id, reason)
  VALUES (v_model, p_alias, 'rollback', v_current, v_entry.old_version_id, p_reason);
  RETURN QUERY SELECT * FROM dv.model_version_overview o WHERE o.id = v_entry.old_version_id;
END
$$;
COMMENT ON FUNCTION dv.model_rollback(text, text, text) IS 'Moves an alias back to where its latest not-yet-undone promote found it; recorded in the alias history.
Example: SELECT version FROM dv.model_rollback(''resnet'', ''production'');';

CREATE FUNCTION dv.model_alias_history(p_model text)
RETURNS TABLE (id bigint, alias text, action text, old_version integer, new_version integer, old_version_id bigint, new_version_id bigint,
               rolled_back boolean, reason text, moved_by text, moved_at timestamptz)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT l.id, l.alias, l.action, o.version, n.version, l.old_version_id, l.new_version_id, l.rolled_back, l.reason, l.moved_by, l.moved_at
  FROM dv.model_alias_log l
  LEFT JOIN dv.model_versions o ON o.id = l.old_version_id
  LEFT JOIN dv.model_versions n ON n.id = l.new_version_id
  WHERE l.model_id = dv_internal.model_id(p_model)
  ORDER BY l.id DESC
$$;
COMMENT ON FUNCTION dv.model_alias_history(text) IS 'Every move of a model''s aliases, newest first: who moved which alias from which version to which, when and why.';

-- ---------------------------------------------------------------------------
-- API: lineage
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv.external_dataset_id(p_namespace text, p_name text, p_create boolean DEFAULT false)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_id bigint;
BEGIN
  IF coalesce(p_namespace, '') = '' OR coalesce(p_name, '') = '' THEN
    RAISE EXCEPTION 'an external dataset needs a namespace and a name'
      USING ERRCODE = 'invalid_parameter_value', HINT = 'e.g. external warehouse raw.images';
  END IF;
  IF p_create THEN
    INSERT INTO dv.external_datasets (namespace, name) VALUES (p_namespace, p_name) ON CONFLICT DO NOTHING;
  END IF;
  SELECT x.id INTO v_id FROM dv.external_datasets x WHERE x.namespace = p_namespace AND x.name = p_name;
  IF v_id IS NULL THEN
    RAISE EXCEPTION 'external dataset "%" "%" does not exist', p_namespace, p_name
      USING ERRCODE = 'undefined_object', HINT = 'See SELECT namespace, name FROM dv.external_datasets';
  END IF;
  RETURN v_id;
END
$$;
COMMENT ON FUNCTION dv.external_dataset_id(text, text, boolean) IS 'The id of an external dataset (OpenLineage namespace + name); with p_create, registers it first.';

CREATE FUNCTION dv.lineage_node(p_kind text, p_ref text, p_name text DEFAULT NULL)
RETURNS TABLE (kind text, id bigint, name text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
-- Names as people write them:
--   dataset_version  flights@v3, flights@main, flights@v1.0~2, flights (= main), or a version id
--   run              17, or an OpenLineage runId
--   model_version    42 (global id), or resnet@3, resnet@production, resnet@latest
--   model            resnet, or a model id
--   job              NAMESPACE with p_name NAME, or a job id
--   external_dataset NAMESPACE with p_name NAME, or an id
DECLARE
  v_kind text := dv_internal.lineage_kind(p_kind, true);
  v_id bigint;
  v_at int := position('@' IN coalesce(p_ref, ''));
BEGIN
  IF coalesce(p_ref, '') = '' THEN
    RAISE EXCEPTION 'no % given', replace(v_kind, '_', ' ') USING ERRCODE = 'invalid_parameter_value', HINT = 'e.g. run 17, dataset flights@v3, model-version resnet@production';
  END IF;
  IF v_kind = 'dataset_version' THEN
    IF v_at > 0 THEN
      v_id := dv.resolve_ref(left(p_ref, v_at - 1), substr(p_ref, v_at + 1));
    ELSIF p_ref ~ '^[0-9]{1,18}$' AND NOT EXISTS (SELECT 1 FROM dv.datasets d WHERE d.name = p_ref) THEN
      SELECT v.id INTO v_id FROM dv.versions v WHERE v.id = p_ref::bigint AND v.status = 'committed';
    ELSE
      v_id := dv.resolve_ref(p_ref, 'main');
    END IF;
  ELSIF v_kind = 'run' THEN
    IF p_ref ~ '^[0-9]{1,18}$' THEN
      SELECT r.id INTO v_id FROM dv.runs r WHERE r.id = p_ref::bigint;
    ELSE
      SELECT r.id INTO v_id FROM dv.runs r WHERE r.external_id = p_ref;
    END IF;
  ELSIF v_kind = 'model_version' THEN
    IF v_at > 0 THEN
      v_id := dv.model_version_id(left(p_ref, v_at - 1), substr(p_ref, v_at + 1));
    ELSIF p_ref ~ '^[0-9]{1,18}$' THEN
      SELECT mv.id INTO v_id FROM dv.model_versions mv WHERE mv.id = p_ref::bigint;
    END IF;
  ELSIF v_kind = 'model' THEN
    SELECT m.id INTO v_id FROM dv.models m WHERE m.name = p_ref;
    IF v_id IS NULL AND p_ref ~ '^[0-9]{1,18}$' THEN
      SELECT m.id INTO v_id FROM dv.models m WHERE m.id = p_ref::bigint;
    END IF;
  ELSIF v_kind = 'job' THEN
    IF p_name IS NULL AND p_ref ~ '^[0-9]{1,18}$' THEN
      SELECT j.id INTO v_id FROM dv.jobs j WHERE j.id = p_ref::bigint;
    ELSE
      SELECT j.id INTO v_id FROM dv.jobs j WHERE j.namespace = p_ref AND j.name = p_name;
    END IF;
  ELSE
    IF p_name IS NULL AND p_ref ~ '^[0-9]{1,18}$' THEN
      SELECT x.id INTO v_id FROM dv.external_datasets x WHERE x.id = p_ref::bigint;
    ELSE
      SELECT x.id INTO v_id FROM dv.external_datasets x WHERE x.namespace = p_ref AND x.name = p_name;
    END IF;
  END IF;
  IF v_id IS NULL THEN
    RAISE EXCEPTION '% "%" does not exist', replace(v_kind, '_', ' '), concat_ws(' ', p_ref, p_name)
      USING ERRCODE = 'undefined_object',
            HINT = 'Write run 17, dataset flights@v3, model-version 42 or resnet@production, model resnet, job NAMESPACE NAME, external NAMESPACE NAME';
  END IF;
  RETURN QUERY SELECT v_kind, v_id,
    CASE WHEN v_kind = 'model' THEN (SELECT m.name FROM dv.models m WHERE m.id = v_id) ELSE dv_internal.lineage_node_name(v_kind, v_id) END;
END
$$;
COMMENT ON FUNCTION dv.lineage_node(text, text, text) IS 'Resolves a node as people write it (dataset flights@v3, run 17, model-version resnet@production, external NAMESPACE NAME) to its kind, id and display name.
Example: SELECT * FROM dv.lineage_node(''dataset'', ''flights@main'');';

CREATE FUNCTION dv.lineage_add(p_src_kind text, p_src_id bigint, p_dst_kind text, p_dst_id bigint, p_relation text DEFAULT 'derived_from')
RETURNS SETOF dv.lineage_edge_overview
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_src text := dv_internal.lineage_kind(p_src_kind);
  v_dst text := dv_internal.lineage_kind(p_dst_kind);
BEGIN
  IF dv_internal.lineage_node_name(v_src, p_src_id) IS NULL THEN
    RAISE EXCEPTION '% % does not exist', replace(v_src, '_', ' '), p_src_id USING ERRCODE = 'undefined_object', HINT = 'Give the id of an existing object; see dv.lineage_node()';
  END IF;
  IF dv_internal.lineage_node_name(v_dst, p_dst_id) IS NULL THEN
    RAISE EXCEPTION '% % does not exist', replace(v_dst, '_', ' '), p_dst_id USING ERRCODE = 'undefined_object', HINT = 'Give the id of an existing object; see dv.lineage_node()';
  END IF;
  IF v_src = v_dst AND p_src_id = p_dst_id THEN
    RAISE EXCEPTION 'a lineage edge cannot join % % to itself', replace(v_src, '_', ' '), p_src_id USING ERRCODE = 'invalid_parameter_value', HINT = 'Give two different nodes';
  END IF;
  IF coalesce(btrim(p_relation), '') = '' OR p_relation ~ '[[:cntrl:]]' OR octet_length(p_relation) > 63 THEN
    RAISE EXCEPTION 'relation "%" is not allowed', p_relation USING ERRCODE = 'invalid_parameter_value', HINT = 'A relation is 1 to 63 bytes, e.g. derived_from, used_by, copied_to';
  END IF;
  PERFORM dv_internal.lineage_link(v_src, ARRAY[p_src_id], v_dst, ARRAY[p_dst_id], p_relation, 'manual');
  RETURN QUERY SELECT * FROM dv.lineage_edge_overview o
  WHERE o.src_kind = v_src AND o.src_id = p_src_id AND o.dst_kind = v_dst AND o.dst_id = p_dst_id AND o.relation = p_relation;
END
$$;
COMMENT ON FUNCTION dv.lineage_add(text, bigint, text, bigint, text) IS 'Adds a lineage edge by hand (src caused dst); adding an existing edge changes nothing.
Example: SELECT * FROM dv.lineage_add(''external_dataset'', dv.external_dataset_id(''warehouse'', ''raw.images'', true), ''dataset_version'', 42, ''copied_to'');';

CREATE FUNCTION dv.lineage_upstream(p_kind text, p_id bigint, p_max_depth integer DEFAULT 10)
RETURNS TABLE (kind text, id bigint, name text, depth integer, relation text, path text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
-- PL/pgSQL, not SQL: the statement's plan is cached for the session instead of being
-- planned on every call.
BEGIN
  RETURN QUERY
  SELECT w.kind, w.ref_id, w.name, w.depth, w.relation, string_to_array(w.path, '>')
  FROM dv_internal.lineage_walk(dv_internal.lineage_start(p_kind, p_id), false, p_max_depth) w;
END
$$;
COMMENT ON FUNCTION dv.lineage_upstream(text, bigint, integer) IS 'Everything a node came from, breadth first up to p_max_depth: kind, id, name, depth, the relation that reached it and the path (kind:id keys from the start). Cycle-safe. Kind model starts from all its versions.
Example: SELECT * FROM dv.lineage_upstream(''model_version'', 42);';

CREATE FUNCTION dv.lineage_downstream(p_kind text, p_id bigint, p_max_depth integer DEFAULT 10)
RETURNS TABLE (kind text, id bigint, name text, depth integer, relation text, path text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
-- PL/pgSQL, not SQL: the statement's plan is cached for the session instead of being
-- planned on every call.
BEGIN
  RETURN QUERY
  SELECT w.kind, w.ref_id, w.name, w.depth, w.relation, string_to_array(w.path, '>')
  FROM dv_internal.lineage_walk(dv_internal.lineage_start(p_kind, p_id), true, p_max_depth) w;
END
$$;
COMMENT ON FUNCTION dv.lineage_downstream(text, bigint, integer) IS 'Everything that came from a node, breadth first up to p_max_depth, with depth and path. Cycle-safe.
Example: SELECT * FROM dv.lineage_downstream(''dataset_version'', 7, 5);';

CREATE FUNCTION dv.lineage_impact(p_dataset text, p_ref text DEFAULT 'main', p_max_depth integer DEFAULT 100)
RETURNS TABLE (kind text, id bigint, name text, depth integer, path text[])
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
BEGIN
  RETURN QUERY
  SELECT w.kind, w.ref_id, w.name, w.depth, string_to_array(w.path, '>')
  FROM dv_internal.lineage_walk(dv_internal.lineage_start('dataset_version', dv.resolve_ref(p_dataset, p_ref)), true, p_max_depth) w
  WHERE w.kind IN ('run', 'model_version')
  ORDER BY w.depth, w.kind, w.ref_id;
END
$$;
COMMENT ON FUNCTION dv.lineage_impact(text, text, integer) IS 'Every run and model version that depends on a dataset version, transitively (through derived versions and run outputs), with the path.
Example: SELECT kind, name, path FROM dv.lineage_impact(''labels'', ''v3'');';

CREATE FUNCTION dv.lineage_path(p_from_kind text, p_from_id bigint, p_to_kind text, p_to_id bigint, p_max_depth integer DEFAULT 50)
RETURNS TABLE (step integer, kind text, id bigint, name text, relation text, direction text)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
-- A shortest path: first downstream from -> to; if there is none, upstream (to is an
-- ancestor of from). Empty when the two are not connected within p_max_depth.
DECLARE
  v_from bigint[] := dv_internal.lineage_start(p_from_kind, p_from_id, false);
  v_to bigint[] := dv_internal.lineage_start(p_to_kind, p_to_id, false);
  v_path text;
  v_dir text;
BEGIN
  IF cardinality(v_from) = 0 OR cardinality(v_to) = 0 THEN
    RETURN;
  END IF;
  SELECT w.path INTO v_path FROM dv_internal.lineage_walk(v_from, true, p_max_depth, v_to[1]) w WHERE w.node_id = v_to[1];
  v_dir := 'down';
  IF v_path IS NULL THEN
    SELECT w.path INTO v_path FROM dv_internal.lineage_walk(v_from, false, p_max_depth, v_to[1]) w WHERE w.node_id = v_to[1];
    v_dir := 'up';
  END IF;
  IF v_path IS NULL THEN
    RETURN;
  END IF;
  RETURN QUERY
  SELECT (k.ord - 1)::int, n.kind, n.ref_id, n.name,
         CASE WHEN k.ord = 1 THEN NULL
              WHEN v_dir = 'down' THEN (SELECT e.relation FROM dv.lineage_edges e JOIN dv.lineage_nodes p ON p.id = e.src
                                        WHERE e.dst = n.id AND p.kind || ':' || p.ref_id = prev.key ORDER BY e.relation LIMIT 1)
              ELSE (SELECT e.relation FROM dv.lineage_edges e JOIN dv.lineage_nodes p ON p.id = e.dst
                    WHERE e.src = n.id AND p.kind || ':' || p.ref_id = prev.key ORDER BY e.relation LIMIT 1) END,
         v_dir
  FROM unnest(string_to_array(v_path, '>')) WITH ORDINALITY k(key, ord)
  LEFT JOIN LATERAL (SELECT (string_to_array(v_path, '>'))[k.ord - 1] AS key) prev ON true
  JOIN dv.lineage_nodes n ON n.kind = split_part(k.key, ':', 1) AND n.ref_id = split_part(k.key, ':', 2)::bigint
  ORDER BY k.ord;
END
$$;
COMMENT ON FUNCTION dv.lineage_path(text, bigint, text, bigint, integer) IS 'A shortest lineage path between two nodes, one row per step (direction down: from caused to; up: to is an ancestor of from). Empty when not connected.
Example: SELECT * FROM dv.lineage_path(''dataset_version'', 7, ''model_version'', 42);';

CREATE FUNCTION dv.lineage_graph(p_kind text, p_id bigint, p_depth integer DEFAULT 3)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- The neighbourhood of a node (or of all versions of a model) up to p_depth steps
-- upstream and downstream, with every edge between the nodes found.
DECLARE
  v_start bigint[] := dv_internal.lineage_start(p_kind, p_id);
  v_ids bigint[];
  v_nodes jsonb;
  v_edges jsonb;
BEGIN
  WITH found AS (
    SELECT n.id, n.kind, n.ref_id, n.name, 0 AS depth FROM dv.lineage_nodes n WHERE n.id = ANY (v_start)
    UNION ALL
    SELECT w.node_id, w.kind, w.ref_id, w.name, -w.depth FROM dv_internal.lineage_walk(v_start, false, p_depth) w
    UNION ALL
    SELECT w.node_id, w.kind, w.ref_id, w.name, w.depth FROM dv_internal.lineage_walk(v_start, true, p_depth) w
  ), uniq AS (
    SELECT DISTINCT ON (f.id) f.* FROM found f ORDER BY f.id, abs(f.depth)
  )
  SELECT array_agg(u.id),
         coalesce(jsonb_agg(jsonb_build_object('key', u.kind || ':' || u.ref_id, 'kind', u.kind, 'id', u.ref_id, 'name', u.name, 'depth', u.depth)
                            ORDER BY u.depth, u.kind, u.ref_id), '[]'::jsonb)
  INTO v_ids, v_nodes FROM uniq u;

  IF v_ids IS NULL AND p_kind IS NOT NULL AND dv_internal.lineage_kind(p_kind, true) <> 'model' THEN
    -- An object without any edge is still a one-node graph.
    v_nodes := jsonb_build_array(jsonb_build_object('key', dv_internal.lineage_kind(p_kind) || ':' || p_id, 'kind', dv_internal.lineage_kind(p_kind),
                                                    'id', p_id, 'name', dv_internal.lineage_node_name(dv_internal.lineage_kind(p_kind), p_id), 'depth', 0));
  END IF;

  SELECT coalesce(jsonb_agg(jsonb_build_object('from', s.kind || ':' || s.ref_id, 'to', d.kind || ':' || d.ref_id, 'relation', e.relation)
                            ORDER BY s.kind, s.ref_id, d.kind, d.ref_id), '[]'::jsonb)
  INTO v_edges
  FROM dv.lineage_edges e
  JOIN dv.lineage_nodes s ON s.id = e.src
  JOIN dv.lineage_nodes d ON d.id = e.dst
  WHERE e.src IN (SELECT unnest(v_ids)) AND e.dst IN (SELECT unnest(v_ids));

  RETURN jsonb_build_object('nodes', coalesce(v_nodes, '[]'::jsonb), 'edges', v_edges);
END
$$;
COMMENT ON FUNCTION dv.lineage_graph(text, bigint, integer) IS 'The lineage neighbourhood of a node (or of all versions of a model, kind model) as jsonb {nodes: [{key, kind, id, name, depth}], edges: [{from, to, relation}]}; depth < 0 is upstream.
Example: SELECT dv.lineage_graph(''model_version'', 42, 3);';

-- ---------------------------------------------------------------------------
-- API: OpenLineage
-- ---------------------------------------------------------------------------
--
-- Mapping (also in docs/lineage.md):
--   run.runId                      -> dv.runs.external_id (one pgdv run per runId)
--   job.namespace + job.name       -> dv.jobs, with a ran edge to the run
--   eventType                      START/RUNNING keep a run running; COMPLETE -> succeeded,
--                                  FAIL -> failed, ABORT -> killed. A terminal event wins
--                                  over START/RUNNING whatever the arrival order; of two
--                                  terminal events the later eventTime wins. OTHER changes nothing.
--   dataset namespace 'pgdv' and name DATASET or DATASET@REF of an existing pgdv dataset
--                                  -> that dataset's version: REF from the name, else the
--                                  facet version.datasetVersion, else the head of main at ingest.
--                                  Inputs are pinned run inputs, outputs run outputs.
--   any other dataset              -> dv.external_datasets (namespace, name)
-- The raw event is kept in dv.openlineage_events; its SHA-256 (of the canonical jsonb
-- text) makes ingesting the same event twice a no-op.

CREATE FUNCTION dv_internal.try_timestamptz(p_text text)
RETURNS timestamptz
LANGUAGE sql STABLE
AS $$
  -- An inlinable check instead of an exception block (a subtransaction per event): the
  -- shape of an ISO 8601 time with plausible fields. A time that passes but is still
  -- impossible (February 30) fails the whole batch with PostgreSQL's own message.
  SELECT CASE WHEN p_text ~ '^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])([T ]([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,9})?)?)?(Z|z|[+-]([01]\d|2[0-3])(:?[0-5]\d)?)?$'
              THEN p_text::timestamptz END
$$;
COMMENT ON FUNCTION dv_internal.try_timestamptz(text) IS 'An ISO 8601 text as timestamptz, or NULL when it is not one.';

CREATE FUNCTION dv_internal.try_resolve_ref(p_dataset text, p_ref text)
RETURNS bigint
LANGUAGE plpgsql STABLE
AS $$
-- dv.resolve_ref without the error: NULL when the ref does not resolve. Branches, tags
-- and version ids are looked up directly (no subtransaction); only REF~N goes through
-- resolve_ref.
DECLARE
  v_id bigint;
BEGIN
  SELECT r.version_id INTO v_id FROM dv.refs r JOIN dv.datasets d ON d.id = r.dataset_id WHERE d.name = p_dataset AND r.name = p_ref;
  IF v_id IS NOT NULL THEN
    RETURN v_id;
  END IF;
  IF p_ref ~ '^v?[0-9]{1,18}$' THEN
    SELECT v.id INTO v_id FROM dv.versions v JOIN dv.datasets d ON d.id = v.dataset_id
    WHERE v.id = ltrim(p_ref, 'v')::bigint AND d.name = p_dataset AND v.status = 'committed';
    RETURN v_id;
  END IF;
  IF position('~' IN p_ref) = 0 THEN
    RETURN NULL;
  END IF;
  BEGIN
    RETURN dv.resolve_ref(p_dataset, p_ref);
  EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
  END;
END
$$;
COMMENT ON FUNCTION dv_internal.try_resolve_ref(text, text) IS 'The version a ref names, like dv.resolve_ref, or NULL instead of an error.';

CREATE FUNCTION dv.openlineage_ingest_batch(p_events jsonb)
RETURNS TABLE (received integer, ingested integer, duplicates integer)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
#variable_conflict use_column
-- Set-based: a few statements per batch, whatever its size. All or nothing: the first
-- bad event raises 'OpenLineage event #N: field ...' (N counts from 1 in p_events)
-- before anything is written. Only events not seen before (by hash) take effect.
DECLARE
  v_n int;
  v_bad record;
  v_new bigint[];
  v_new_ord boolean[];
  v_run_ext text[];
  v_pg_ds text[];
  v_pg_ref text[];
  v_pg_vid bigint[];
  -- Every input and output dataset of the batch, unpacked once and read by every later
  -- statement (event number, 1 inputs / 2 outputs, index in its array, the object).
  i_ord bigint[];
  i_part int[];
  i_idx bigint[];
  i_x jsonb[];
  n_run bigint[];
  n_part int[];
  n_x jsonb[];
BEGIN
  IF jsonb_typeof(p_events) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'OpenLineage events must be a JSON array, got %', coalesce(jsonb_typeof(p_events), 'NULL')
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Pass a jsonb array of RunEvents, or one event to dv.openlineage_ingest';
  END IF;
  v_n := jsonb_array_length(p_events);

  SELECT array_agg(a.ord), array_agg(s.part), array_agg(i.idx - 1), array_agg(i.x)
  INTO i_ord, i_part, i_idx, i_x
  FROM jsonb_array_elements(p_events) WITH ORDINALITY a(e, ord)
  CROSS JOIN LATERAL (VALUES (1, 'inputs'), (2, 'outputs')) s(part, side)
  CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(a.e -> s.side) = 'array' THEN a.e -> s.side ELSE '[]'::jsonb END) WITH ORDINALITY i(x, idx)
  WHERE jsonb_typeof(a.e) = 'object';

  -- Validation, set-based: the first bad field of the first bad event.
  WITH ev AS (
    SELECT a.ord, a.e FROM jsonb_array_elements(p_events) WITH ORDINALITY a(e, ord)
  ), top AS (
    SELECT ev.ord, 0 AS part, 0::bigint AS idx, CASE
      WHEN jsonb_typeof(ev.e) <> 'object' THEN format('is not a JSON object (got %s)', jsonb_typeof(ev.e))
      WHEN ev.e ? 'eventType' AND (jsonb_typeof(ev.e -> 'eventType') <> 'string'
           OR ev.e ->> 'eventType' NOT IN ('START', 'RUNNING', 'COMPLETE', 'FAIL', 'ABORT', 'OTHER'))
        THEN format('field "eventType" is %s; expected START, RUNNING, COMPLETE, FAIL, ABORT or OTHER', ev.e -> 'eventType')
      WHEN jsonb_typeof(ev.e -> 'eventTime') IS DISTINCT FROM 'string' THEN 'field "eventTime" is missing or not a string'
      WHEN dv_internal.try_timestamptz(ev.e ->> 'eventTime') IS NULL THEN format('field "eventTime" is not an ISO 8601 time: %s', ev.e -> 'eventTime')
      WHEN jsonb_typeof(ev.e #> '{run,runId}') IS DISTINCT FROM 'string' OR ev.e #>> '{run,runId}' = '' THEN 'field "run.runId" is missing or not a string'
      WHEN jsonb_typeof(ev.e #> '{job,namespace}') IS DISTINCT FROM 'string' OR ev.e #>> '{job,namespace}' = '' THEN 'field "job.namespace" is missing or not a string'
      WHEN jsonb_typeof(ev.e #> '{job,name}') IS DISTINCT FROM 'string' OR ev.e #>> '{job,name}' = '' THEN 'field "job.name" is missing or not a string'
      WHEN ev.e ? 'inputs' AND jsonb_typeof(ev.e -> 'inputs') NOT IN ('array', 'null') THEN 'field "inputs" is not an array'
      WHEN ev.e ? 'outputs' AND jsonb_typeof(ev.e -> 'outputs') NOT IN ('array', 'null') THEN 'field "outputs" is not an array'
    END AS problem
    FROM ev
  ), item_problems AS (
    SELECT it.ord, it.part, it.idx, CASE
      WHEN jsonb_typeof(it.x) <> 'object' THEN format('field "%s[%s]" is not an object', it.side, it.idx)
      WHEN jsonb_typeof(it.x -> 'namespace') IS DISTINCT FROM 'string' OR it.x ->> 'namespace' = '' THEN format('field "%s[%s].namespace" is missing or not a string', it.side, it.idx)
      WHEN jsonb_typeof(it.x -> 'name') IS DISTINCT FROM 'string' OR it.x ->> 'name' = '' THEN format('field "%s[%s].name" is missing or not a string', it.side, it.idx)
    END AS problem
    FROM (SELECT u.ord, u.part, CASE u.part WHEN 1 THEN 'inputs' ELSE 'outputs' END AS side, u.idx, u.x
          FROM unnest(i_ord, i_part, i_idx, i_x) u(ord, part, idx, x)) it
  )
  SELECT p.ord, p.problem INTO v_bad
  FROM (SELECT * FROM top UNION ALL SELECT * FROM item_problems) p
  WHERE p.problem IS NOT NULL
  ORDER BY p.ord, p.part, p.idx LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'OpenLineage event #%: %', v_bad.ord, v_bad.problem
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Fix the event; see https://openlineage.io/spec for RunEvent fields. Nothing was ingested';
  END IF;

  -- pgdv datasets: each distinct (dataset, ref) of the batch resolved once.
  WITH items AS (
    SELECT u.x ->> 'name' AS nm, u.x #>> '{facets,version,datasetVersion}' AS ver
    FROM unnest(i_x) u(x)
    WHERE u.x ->> 'namespace' = 'pgdv'
  ), pg AS (
    SELECT DISTINCT ds.name AS dataset, coalesce(nullif(substr(it.nm, length(ds.name) + 2), ''), it.ver, 'main') AS ref
    FROM items it JOIN dv.datasets ds ON ds.name = split_part(it.nm, '@', 1)
  ), pairs AS (
    -- Branches, tags and version ids by joins; only REF~N goes through try_resolve_ref.
    SELECT d.dataset, d.ref,
           coalesce(r.version_id, v.id, CASE WHEN position('~' IN d.ref) > 0 THEN dv_internal.try_resolve_ref(d.dataset, d.ref) END) AS vid
    FROM pg d
    JOIN dv.datasets ds ON ds.name = d.dataset
    LEFT JOIN dv.refs r ON r.dataset_id = ds.id AND r.name = d.ref
    LEFT JOIN dv.versions v ON r.version_id IS NULL AND v.dataset_id = ds.id AND v.status = 'committed'
                           AND v.id = CASE WHEN d.ref ~ '^v?[0-9]{1,18}$' THEN ltrim(d.ref, 'v')::bigint END
  )
  SELECT array_agg(pairs.dataset), array_agg(pairs.ref), array_agg(pairs.vid) INTO v_pg_ds, v_pg_ref, v_pg_vid FROM pairs;
  IF v_pg_vid IS NOT NULL AND array_position(v_pg_vid, NULL) IS NOT NULL THEN
    WITH items AS (
      SELECT u.ord, u.part, CASE u.part WHEN 1 THEN 'inputs' ELSE 'outputs' END AS side, u.idx, u.x ->> 'name' AS nm, u.x #>> '{facets,version,datasetVersion}' AS ver
      FROM unnest(i_ord, i_part, i_idx, i_x) u(ord, part, idx, x)
      WHERE u.x ->> 'namespace' = 'pgdv'
    )
    SELECT it.ord, format('field "%s[%s]" names pgdv dataset %s at "%s", which does not resolve', it.side, it.idx, u.dataset, u.ref) AS problem, u.dataset, u.ref INTO v_bad
    FROM items it
    JOIN unnest(v_pg_ds, v_pg_ref, v_pg_vid) u(dataset, ref, vid)
      ON u.vid IS NULL AND u.dataset = split_part(it.nm, '@', 1) AND u.ref = coalesce(nullif(substr(it.nm, length(u.dataset) + 2), ''), it.ver, 'main')
    ORDER BY it.ord, it.part, it.idx LIMIT 1;
    BEGIN
      PERFORM dv.resolve_ref(v_bad.dataset, v_bad.ref);
    EXCEPTION WHEN OTHERS THEN
      v_bad.problem := format('%s (%s)', v_bad.problem, SQLERRM);
    END;
    RAISE EXCEPTION 'OpenLineage event #%: %', v_bad.ord, v_bad.problem
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Name an existing branch, tag or version id of that dataset; nothing was ingested';
  END IF;

  -- Raw events, one row per distinct hash. Also, by event number: its runId and whether
  -- it is new (an event twice in the batch: both).
  WITH h AS MATERIALIZED (
    SELECT a.e, encode(sha256(convert_to(a.e::text, 'UTF8')), 'hex') AS hash, a.ord
    FROM jsonb_array_elements(p_events) WITH ORDINALITY a(e, ord)
  ), ins AS (
    INSERT INTO dv.openlineage_events (event_hash, event_type, event_time, run_external_id, job_namespace, job_name, event)
    SELECT DISTINCT ON (h.hash) h.hash, h.e ->> 'eventType', (h.e ->> 'eventTime')::timestamptz, h.e #>> '{run,runId}',
           h.e #>> '{job,namespace}', h.e #>> '{job,name}', h.e
    FROM h
    ORDER BY h.hash, h.ord
    ON CONFLICT (event_hash) DO NOTHING
    RETURNING id, event_hash
  )
  SELECT (SELECT array_agg(ins.id) FROM ins),
         (SELECT array_agg(h.hash IN (SELECT ins.event_hash FROM ins) ORDER BY h.ord) FROM h),
         (SELECT array_agg(h.e #>> '{run,runId}' ORDER BY h.ord) FROM h)
  INTO v_new, v_new_ord, v_run_ext;

  IF v_new IS NULL THEN
    RETURN QUERY SELECT v_n, 0, v_n;
    RETURN;
  END IF;

  INSERT INTO dv.jobs (namespace, name)
  SELECT DISTINCT ev.job_namespace, ev.job_name FROM dv.openlineage_events ev WHERE ev.id = ANY (v_new)
  ON CONFLICT (namespace, name) DO NOTHING;

  -- Per run of the new events: earliest time, and the latest terminal event if any.
  -- New runs are inserted with that state; only runs that existed before this batch
  -- are updated (a terminal event wins over START/RUNNING; the later terminal wins).
  WITH s AS (
    SELECT ev.run_external_id,
           (array_agg(ev.job_namespace ORDER BY ev.event_time, ev.id))[1] AS job_namespace,
           (array_agg(ev.job_name ORDER BY ev.event_time, ev.id))[1] AS job_name,
           min(ev.event_time) AS first_time,
           (array_agg(ev.event_type ORDER BY ev.event_time DESC, ev.id DESC) FILTER (WHERE ev.event_type IN ('COMPLETE', 'FAIL', 'ABORT')))[1] AS term_type,
           max(ev.event_time) FILTER (WHERE ev.event_type IN ('COMPLETE', 'FAIL', 'ABORT')) AS term_time
    FROM dv.openlineage_events ev WHERE ev.id = ANY (v_new)
    GROUP BY ev.run_external_id
  ), ins AS (
    INSERT INTO dv.runs (job_id, name, external_id, started_at, started_by, status, finished_at, finished_by, status_event_time)
    SELECT j.id, s.job_name, s.run_external_id, s.first_time, session_user,
           CASE s.term_type WHEN 'COMPLETE' THEN 'succeeded' WHEN 'FAIL' THEN 'failed' WHEN 'ABORT' THEN 'killed' ELSE 'running' END,
           s.term_time, CASE WHEN s.term_type IS NOT NULL THEN session_user END, s.term_time
    FROM s JOIN dv.jobs j ON j.namespace = s.job_namespace AND j.name = s.job_name
    ON CONFLICT (external_id) DO NOTHING
    RETURNING external_id
  )
  UPDATE dv.runs r
  SET started_at = least(r.started_at, s.first_time),
      status = CASE WHEN s.term_type IS NOT NULL AND (r.status = 'running' OR r.status_event_time IS NULL OR s.term_time >= r.status_event_time)
                    THEN CASE s.term_type WHEN 'COMPLETE' THEN 'succeeded' WHEN 'FAIL' THEN 'failed' ELSE 'killed' END
                    ELSE r.status END,
      finished_at = CASE WHEN s.term_type IS NOT NULL AND (r.status = 'running' OR r.status_event_time IS NULL OR s.term_time >= r.status_event_time)
                         THEN s.term_time ELSE r.finished_at END,
      status_event_time = CASE WHEN s.term_type IS NOT NULL AND (r.status = 'running' OR r.status_event_time IS NULL OR s.term_time >= r.status_event_time)
                               THEN s.term_time ELSE r.status_event_time END,
      finished_by = CASE WHEN s.term_type IS NOT NULL AND r.finished_by IS NULL THEN session_user ELSE r.finished_by END
  FROM s
  WHERE r.external_id = s.run_external_id
    AND NOT EXISTS (SELECT 1 FROM ins WHERE ins.external_id = s.run_external_id);

  -- The datasets of the new events, each with its run's id (runs exist now).
  -- Subscripts, not joins between arrays: the planner cannot size unnest() and may
  -- rescan one array per element of the other.
  SELECT array_agg(r.id), array_agg(u.part), array_agg(u.x) INTO n_run, n_part, n_x
  FROM unnest(i_ord, i_part, i_x) u(ord, part, x)
  JOIN dv.runs r ON r.external_id = v_run_ext[u.ord::int]
  WHERE v_new_ord[u.ord::int];

  -- Datasets of the new events: pgdv versions or external datasets.
  WITH io AS (
    SELECT u.run_id, CASE u.part WHEN 1 THEN 'input' ELSE 'output' END AS direction, u.x ->> 'namespace' AS ns, u.x ->> 'name' AS nm,
           u.x #>> '{facets,version,datasetVersion}' AS ver, u.x -> 'facets' AS facets
    FROM unnest(n_run, n_part, n_x) u(run_id, part, x)
  ), pg AS (
    SELECT DISTINCT io.run_id, io.direction, ds.name AS dataset,
           coalesce(nullif(substr(io.nm, length(ds.name) + 2), ''), io.ver, 'main') AS ref
    FROM io JOIN dv.datasets ds ON io.ns = 'pgdv' AND ds.name = split_part(io.nm, '@', 1)
  ), pinned AS (
    INSERT INTO dv.run_datasets (run_id, direction, version_id, dataset_id, dataset_name, ref, content_hash)
    SELECT DISTINCT ON (pg.run_id, pg.direction, v.id) pg.run_id, pg.direction, v.id, v.dataset_id, pg.dataset, pg.ref, v.content_hash
    FROM pg
    JOIN unnest(v_pg_ds, v_pg_ref, v_pg_vid) u(dataset, ref, vid) ON u.dataset = pg.dataset AND u.ref = pg.ref
    JOIN dv.versions v ON v.id = u.vid
    ORDER BY pg.run_id, pg.direction, v.id
    ON CONFLICT DO NOTHING
    RETURNING 1
  ), ext AS (
    INSERT INTO dv.external_datasets (namespace, name, facets)
    SELECT DISTINCT ON (io.ns, io.nm) io.ns, io.nm, coalesce(io.facets, '{}'::jsonb)
    FROM io
    WHERE NOT (io.ns = 'pgdv' AND EXISTS (SELECT 1 FROM dv.datasets ds WHERE ds.name = split_part(io.nm, '@', 1)))
    ORDER BY io.ns, io.nm
    ON CONFLICT (namespace, name) DO NOTHING
    RETURNING 1
  )
  SELECT (SELECT count(*) FROM pinned) + (SELECT count(*) FROM ext) INTO v_n;

  -- Edges between runs and external datasets (the external rows exist now).
  PERFORM dv_internal.lineage_link('external_dataset', a.src, 'run', a.dst, 'used_by', 'openlineage')
  FROM (
    SELECT array_agg(x.id) AS src, array_agg(u.run_id) AS dst
    FROM unnest(n_run, n_part, n_x) u(run_id, part, x)
    JOIN dv.external_datasets x ON x.namespace = u.x ->> 'namespace' AND x.name = u.x ->> 'name'
    WHERE u.part = 1
  ) a WHERE a.src IS NOT NULL;
  PERFORM dv_internal.lineage_link('run', a.src, 'external_dataset', a.dst, 'produced', 'openlineage')
  FROM (
    SELECT array_agg(u.run_id) AS src, array_agg(x.id) AS dst
    FROM unnest(n_run, n_part, n_x) u(run_id, part, x)
    JOIN dv.external_datasets x ON x.namespace = u.x ->> 'namespace' AND x.name = u.x ->> 'name'
    WHERE u.part = 2
  ) a WHERE a.src IS NOT NULL;
  RETURN QUERY SELECT jsonb_array_length(p_events), cardinality(v_new), jsonb_array_length(p_events) - cardinality(v_new);
END
$$;
COMMENT ON FUNCTION dv.openlineage_ingest_batch(jsonb) IS 'Ingests a jsonb array of OpenLineage RunEvents, set-based and all or nothing; events seen before are skipped. Runs map by runId, jobs by namespace + name, datasets in namespace pgdv to pgdv versions, others to dv.external_datasets.
Example: SELECT * FROM dv.openlineage_ingest_batch(''[{"eventType":"START","eventTime":"2026-01-01T00:00:00Z","run":{"runId":"r1"},"job":{"namespace":"etl","name":"clean"}}]'');';

CREATE FUNCTION dv.openlineage_ingest(p_event jsonb)
RETURNS TABLE (received integer, ingested integer, duplicates integer)
LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT * FROM dv.openlineage_ingest_batch(jsonb_build_array(p_event))
$$;
COMMENT ON FUNCTION dv.openlineage_ingest(jsonb) IS 'Ingests one OpenLineage RunEvent (see dv.openlineage_ingest_batch); ingesting it again changes nothing.';

-- ---------------------------------------------------------------------------
-- Privileges
-- ---------------------------------------------------------------------------

REVOKE ALL ON ALL TABLES IN SCHEMA dv FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA dv, dv_internal FROM PUBLIC;
GRANT SELECT ON dv.experiments, dv.jobs, dv.runs, dv.run_metrics, dv.run_datasets, dv.models, dv.model_versions, dv.model_aliases,
  dv.model_alias_log, dv.external_datasets, dv.lineage_nodes, dv.lineage_edges, dv.openlineage_events,
  dv.experiment_overview, dv.run_overview, dv.model_version_overview, dv.model_overview, dv.lineage_edge_overview TO pgdv_reader;
GRANT EXECUTE ON FUNCTION dv_internal.lineage_kind(text, boolean), dv_internal.lineage_node_name(text, bigint),
  dv_internal.lineage_start(text, bigint, boolean), dv_internal.lineage_walk(bigint[], boolean, integer, bigint),
  dv_internal.experiment_id(text), dv_internal.run_row(bigint, boolean), dv_internal.model_id(text) TO pgdv_reader;
GRANT EXECUTE ON FUNCTION dv.run_inputs(bigint), dv.run_outputs(bigint), dv.run_metric_history(bigint, text), dv.run_compare(bigint, bigint),
  dv.model_version_id(text, text), dv.model_alias_history(text), dv.lineage_node(text, text, text),
  dv.lineage_upstream(text, bigint, integer), dv.lineage_downstream(text, bigint, integer), dv.lineage_impact(text, text, integer),
  dv.lineage_path(text, bigint, text, bigint, integer), dv.lineage_graph(text, bigint, integer) TO pgdv_reader;
GRANT EXECUTE ON FUNCTION dv.experiment_create(text, text, text[], jsonb),
  dv.run_start(text, text, jsonb, text[], text, text[], jsonb), dv.run_add_inputs(bigint, text[]), dv.run_log_params(bigint, jsonb),
  dv.run_log_metrics(bigint, jsonb, bigint), dv.run_finish(bigint, text, text[], text),
  dv.model_register(text, bigint, text, text, jsonb, text, jsonb), dv.model_promote(text, text, bigint, text), dv.model_rollback(text, text, text),
  dv.external_dataset_id(text, text, boolean), dv.lineage_add(text, bigint, text, bigint, text),
  dv.openlineage_ingest_batch(jsonb), dv.openlineage_ingest(jsonb) TO pgdv_writer;
