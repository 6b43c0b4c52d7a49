-- 007 files gc: garbage collection of chunks and packs (DESIGN.md "Retention"), and
-- the lock that keeps it apart from ingests.
--
-- Mark: the live contents are every content a files dataset's version row names (each
-- delta table of each version, so versions made by merge, reset or plain SQL count
-- too), plus dv_files.dataset_contents, blobs, model artifacts, and contents written
-- less than the grace period ago (an ingest writes its contents while it reads and
-- links them to its version only when it commits). Live chunks are their chunks; a
-- pack is live while one of its chunks is.
--
-- Sweep (dv.gc_sweep, under the files lock held exclusively): the contents nothing
-- references lose their rows; a pack that holds only unreferenced chunks, and a pack
-- an ingest sealed but never registered (dv.unregistered_packs), lose their rows once
-- written longer than the grace period ago, and their object keys go to
-- dv_files.gc_queue; the caller (pgdv gc) deletes those objects and then the queue
-- rows (dv.gc_done). A gc killed between the two leaves the queue, which the next gc
-- finishes. A pack mixing live and dead chunks is kept whole: repacking it is later
-- work.
--
-- Why a lock as well as a grace period: an ingest relies on chunks it found stored
-- (dv.missing_chunks) from its first batch to its commit, whatever their age, and
-- nothing records which ones until the commit. So ingests hold the files lock shared
-- for their whole life and gc holds it exclusively: gc never runs while an ingest is
-- between its first lookup and its commit. The grace period (default 1 hour) keeps
-- every pack and content written less than that ago, for an ingest that lost the lock
-- (its lock connection broke: a database restart, a network cut) and goes on working.

-- ---------------------------------------------------------------------------
-- The files lock
-- ---------------------------------------------------------------------------

-- One session-level advisory lock per database, key (1885823094, 4): 1885823094 is
-- 'pgdv' in ASCII, 4 the files migration. Shared by ingests, exclusive for gc.

CREATE FUNCTION dv.files_lock(p_mode text DEFAULT 'ingest')
RETURNS void
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
-- Waits for the lock (subject to the caller's lock_timeout) and holds it until
-- dv.files_unlock or the end of the session.
BEGIN
  IF p_mode = 'ingest' THEN
    PERFORM pg_advisory_lock_shared(1885823094, 4);
  ELSIF p_mode = 'gc' THEN
    PERFORM pg_advisory_lock(1885823094, 4);
  ELSE
    RAISE EXCEPTION 'files lock mode "%" is not known', p_mode
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ingest (shared, any number at once) or gc (exclusive)';
  END IF;
END
$$;
COMMENT ON FUNCTION dv.files_lock(text) IS 'Takes the files lock for this session: ''ingest'' shared (every pgdv add and blob put holds it), ''gc'' exclusive (pgdv gc). Waits up to lock_timeout.
A session that writes versions of a files dataset from plain SQL with contents already stored should hold it in ingest mode, so gc cannot delete them meanwhile.
Example: SET lock_timeout = ''1min''; SELECT dv.files_lock(''ingest''); ... SELECT dv.files_unlock(''ingest'');';

CREATE FUNCTION dv.files_try_lock(p_mode text DEFAULT 'ingest')
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_mode = 'ingest' THEN
    RETURN pg_try_advisory_lock_shared(1885823094, 4);
  ELSIF p_mode = 'gc' THEN
    RETURN pg_try_advisory_lock(1885823094, 4);
  END IF;
  RAISE EXCEPTION 'files lock mode "%" is not known', p_mode
    USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ingest (shared, any number at once) or gc (exclusive)';
END
$$;
COMMENT ON FUNCTION dv.files_try_lock(text) IS 'Takes the files lock (''ingest'' shared, ''gc'' exclusive) for this session if it is free now; false if not. See dv.files_lock.';

CREATE FUNCTION dv.files_unlock(p_mode text DEFAULT 'ingest')
RETURNS boolean
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_mode = 'ingest' THEN
    RETURN pg_advisory_unlock_shared(1885823094, 4);
  ELSIF p_mode = 'gc' THEN
    RETURN pg_advisory_unlock(1885823094, 4);
  END IF;
  RAISE EXCEPTION 'files lock mode "%" is not known', p_mode
    USING ERRCODE = 'invalid_parameter_value', HINT = 'Use ingest or gc';
END
$$;
COMMENT ON FUNCTION dv.files_unlock(text) IS 'Releases the files lock this session holds in the given mode; false if it held none. Ending the session releases it too.';

CREATE FUNCTION dv.files_lock_holders()
RETURNS TABLE (pid integer, mode text, granted boolean, application_name text, backend_start timestamptz, client_addr inet)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT l.pid, CASE l.mode WHEN 'ShareLock' THEN 'ingest' WHEN 'ExclusiveLock' THEN 'gc' ELSE l.mode END,
         l.granted, a.application_name, a.backend_start, a.client_addr
  FROM pg_locks l
  LEFT JOIN pg_stat_activity a ON a.pid = l.pid
  WHERE l.locktype = 'advisory' AND l.classid = 1885823094 AND l.objid = 4 AND l.objsubid = 2
    AND l.database = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
  ORDER BY l.granted DESC, l.pid
$$;
COMMENT ON FUNCTION dv.files_lock_holders() IS 'Sessions holding or waiting for the files lock: ingests (mode ingest) and gc (mode gc); pgdv names each in application_name.';

-- ---------------------------------------------------------------------------
-- Mark
-- ---------------------------------------------------------------------------

CREATE FUNCTION dv_internal.files_live_contents()
RETURNS SETOF text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
-- Every content hash something still references, with repeats. The delta tables are
-- read ONLY (each holds its own version's rows), so every row any version of a files
-- dataset ever added is seen once, tombstoned or not: a superset of what the
-- versions hold, which is the safe side.
DECLARE
  v_table name;
BEGIN
  RETURN QUERY SELECT dc.content_hash FROM dv_files.dataset_contents dc;
  RETURN QUERY SELECT b.content_hash FROM dv_files.blobs b;
  RETURN QUERY SELECT lower(mv.artifact_hash) FROM dv.model_versions mv WHERE mv.artifact_hash IS NOT NULL;
  FOR v_table IN
    SELECT t.delta_table FROM dv.version_tables t
    JOIN dv.datasets d ON d.id = t.dataset_id AND d.kind = 'files'
    JOIN dv.version_columns c ON c.version_id = t.version_id AND c.column_name = 'content_hash'
  LOOP
    RETURN QUERY EXECUTE format('SELECT content_hash::text FROM ONLY dv_rows.%I WHERE content_hash IS NOT NULL', v_table);
  END LOOP;
END
$$;
COMMENT ON FUNCTION dv_internal.files_live_contents() IS 'The roots of files garbage collection: content hashes named by any version row of a files dataset, dataset_contents, blobs or model artifacts (with repeats).';

CREATE FUNCTION dv_internal.duration_text(p_interval interval)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN s >= 86400 AND s % 86400 = 0 THEN (s / 86400) || ' d'
    WHEN s >= 3600 AND s % 3600 = 0 THEN (s / 3600) || ' h'
    WHEN s >= 60 AND s % 60 = 0 THEN (s / 60) || ' min'
    ELSE s || ' s'
  END
  FROM (SELECT round(extract(epoch FROM p_interval))::bigint AS s) x
$$;
COMMENT ON FUNCTION dv_internal.duration_text(interval) IS 'An interval as gc''s messages say it: 1 h, 30 min, 90 s, 2 d.';

CREATE FUNCTION dv.gc_plan(p_grace interval DEFAULT interval '1 hour')
RETURNS TABLE (pack_id text, object_key text, size bigint, kind text, chunks integer, live_chunks integer,
               dead_bytes bigint, written_at timestamptz, action text, reason text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- What gc would do now: one row per pack with a chunk no live content uses. kind is
-- 'unreferenced' (no live chunk), 'mixed' (live and dead chunks) or 'unregistered'
-- (sealed by an ingest, never registered); action is 'delete' or 'keep', with the
-- reason. Changes nothing but a temp table (pgdv_gc_live: the live contents, young
-- ones flagged) that dv.gc_sweep reuses in the same transaction.
#variable_conflict use_column
BEGIN
  IF p_grace IS NULL OR p_grace < interval '0' THEN
    RAISE EXCEPTION 'grace period "%" is invalid', p_grace
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Give an interval of zero or more, e.g. ''1 hour''';
  END IF;
  CREATE TEMP TABLE IF NOT EXISTS pgdv_gc_live (hash text PRIMARY KEY, young boolean NOT NULL) ON COMMIT DROP;
  TRUNCATE pgdv_gc_live;
  INSERT INTO pgdv_gc_live SELECT DISTINCT h, false FROM dv_internal.files_live_contents() h WHERE h IS NOT NULL;
  -- Young contents are kept too: an ingest writes its contents while it reads, and
  -- names them in dataset_contents and its version only when it commits.
  INSERT INTO pgdv_gc_live SELECT ct.hash, true FROM dv_files.contents ct WHERE ct.created_at >= now() - p_grace
  ON CONFLICT DO NOTHING;
  ANALYZE pgdv_gc_live;
  RETURN QUERY
  WITH used_chunks AS (
    -- rooted: some referenced content uses the chunk; otherwise only young ones do.
    SELECT cc.chunk_hash, bool_or(NOT l.young) AS rooted
    FROM dv_files.content_chunks cc JOIN pgdv_gc_live l ON l.hash = cc.content_hash
    GROUP BY cc.chunk_hash
  ), per_pack AS (
    SELECT p.id, p.object_key, p.size, p.registered_at,
           count(c.hash)::int AS chunks,
           count(u.chunk_hash) FILTER (WHERE u.rooted)::int AS live,
           count(u.chunk_hash) FILTER (WHERE NOT u.rooted)::int AS young,
           coalesce(sum(c.length) FILTER (WHERE c.hash IS NOT NULL AND u.chunk_hash IS NULL), 0)::bigint AS dead_bytes
    FROM dv_files.packs p
    LEFT JOIN dv_files.chunks c ON c.pack_id = p.id
    LEFT JOIN used_chunks u ON u.chunk_hash = c.hash
    GROUP BY p.id
  ), unregistered AS (
    SELECT sp.pack_id, min(sp.object_key) AS object_key, max(sp.size) AS size, max(sp.created_at) AS written_at
    FROM dv_files.session_packs sp
    WHERE sp.state IN ('uploading', 'absent') AND NOT EXISTS (SELECT 1 FROM dv_files.packs p WHERE p.id = sp.pack_id)
    GROUP BY sp.pack_id
  )
  SELECT x.id, x.object_key, x.size, x.kind, x.chunks, x.live, x.dead_bytes, x.written_at,
         CASE WHEN x.kind <> 'mixed' AND x.written_at < now() - p_grace AND x.young = 0 THEN 'delete' ELSE 'keep' END,
         CASE
           WHEN x.kind = 'mixed' THEN format('holds %s live chunk(s) of %s: kept whole (repacking is not implemented yet)', x.live, x.chunks)
           WHEN x.written_at >= now() - p_grace THEN format('written less than %s ago (grace period)', dv_internal.duration_text(p_grace))
           WHEN x.young > 0 THEN format('holds chunks of contents written less than %s ago (grace period)', dv_internal.duration_text(p_grace))
           WHEN x.kind = 'unregistered' THEN 'sealed by an ingest that never registered it'
           ELSE 'no version, blob or model references any of its chunks'
         END
  FROM (
    SELECT pp.id, pp.object_key, pp.size, CASE WHEN pp.live > 0 THEN 'mixed' ELSE 'unreferenced' END AS kind,
           pp.chunks, pp.live, pp.young, pp.dead_bytes, pp.registered_at AS written_at
    FROM per_pack pp WHERE pp.live = 0 OR pp.live + pp.young < pp.chunks
    UNION ALL
    SELECT u.pack_id, u.object_key, u.size, 'unregistered', NULL::int, NULL::int, 0, NULL::bigint, u.written_at
    FROM unregistered u
  ) x
  ORDER BY x.kind, x.written_at, x.id;
END
$$;
COMMENT ON FUNCTION dv.gc_plan(interval) IS 'Dry run of files garbage collection: each pack that is not wholly live, its kind (unreferenced, mixed, unregistered), dead bytes, and whether gc would delete or keep it, and why.
Changes nothing. Packs written less than p_grace ago, or holding chunks of contents written less than p_grace ago, are kept; packs mixing live and dead chunks are kept whole.
Example: SELECT kind, action, count(*), sum(size) FROM dv.gc_plan(''1 hour'') GROUP BY 1, 2;';

-- ---------------------------------------------------------------------------
-- Sweep
-- ---------------------------------------------------------------------------

CREATE TABLE dv_files.gc_queue (
  object_key  text PRIMARY KEY,
  pack_id     text NOT NULL,
  kind        text NOT NULL CHECK (kind IN ('unreferenced', 'unregistered')),
  size        bigint,
  queued_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE dv_files.gc_queue IS 'Pack objects gc removed from the index and is deleting from the store; rows stay until the object is gone, so a killed gc is finished by the next one.';
GRANT SELECT ON dv_files.gc_queue TO pgdv_reader;

CREATE FUNCTION dv.gc_sweep(p_grace interval DEFAULT interval '1 hour')
RETURNS TABLE (pack_id text, object_key text, size bigint, kind text, chunks integer, live_chunks integer,
               dead_bytes bigint, written_at timestamptz, action text, reason text)
LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
-- The database half of gc, in one transaction: forgets the contents nothing
-- references, removes the index rows of the packs dv.gc_plan marks 'delete' and
-- queues their objects. Returns dv.gc_plan's rows, where the 'delete' ones are now
-- the whole queue (leftovers of a killed gc included): the caller deletes those
-- objects from the store, then passes their keys to dv.gc_done. Requires the files
-- lock held exclusively by this session, so no ingest is running.
#variable_conflict use_column
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.classid = 1885823094 AND l.objid = 4 AND l.objsubid = 2
      AND l.pid = pg_backend_pid() AND l.mode = 'ExclusiveLock' AND l.granted
  ) THEN
    RAISE EXCEPTION 'dv.gc_sweep needs the files lock in gc mode, held by this session'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Run pgdv gc, or SELECT dv.files_lock(''gc'') first (it waits for running ingests)';
  END IF;
  DROP TABLE IF EXISTS pgdv_gc_plan;
  CREATE TEMP TABLE pgdv_gc_plan ON COMMIT DROP AS SELECT * FROM dv.gc_plan(p_grace);

  -- Contents nothing references (pgdv_gc_live was filled by gc_plan just now): their
  -- chunk lists first, for the foreign keys. Only these can point at doomed chunks.
  DELETE FROM dv_files.content_chunks cc WHERE NOT EXISTS (SELECT 1 FROM pgdv_gc_live l WHERE l.hash = cc.content_hash);
  DELETE FROM dv_files.contents ct WHERE NOT EXISTS (SELECT 1 FROM pgdv_gc_live l WHERE l.hash = ct.hash);

  DELETE FROM dv_files.chunks c USING pgdv_gc_plan d WHERE c.pack_id = d.pack_id AND d.action = 'delete' AND d.kind = 'unreferenced';
  DELETE FROM dv_files.packs p USING pgdv_gc_plan d WHERE p.id = d.pack_id AND d.action = 'delete' AND d.kind = 'unreferenced';
  DELETE FROM dv_files.session_packs sp USING pgdv_gc_plan d WHERE sp.pack_id = d.pack_id AND d.action = 'delete';
  INSERT INTO dv_files.gc_queue (object_key, pack_id, kind, size)
  SELECT d.object_key, d.pack_id, d.kind, d.size FROM pgdv_gc_plan d WHERE d.action = 'delete'
  ON CONFLICT (object_key) DO NOTHING;

  -- Pack ids are content-addressed: the same pack may have been written and recorded
  -- again since a killed gc queued it. Such an object is in use: not deleted.
  DELETE FROM dv_files.gc_queue q
  WHERE EXISTS (SELECT 1 FROM dv_files.packs p WHERE p.id = q.pack_id)
     OR EXISTS (SELECT 1 FROM dv_files.session_packs sp WHERE sp.pack_id = q.pack_id AND sp.created_at >= q.queued_at);

  RETURN QUERY
  SELECT k.pack_id, k.object_key, k.size, k.kind, k.chunks, k.live_chunks, k.dead_bytes, k.written_at, k.action, k.reason
  FROM pgdv_gc_plan k WHERE k.action = 'keep'
  UNION ALL
  SELECT q.pack_id, q.object_key, q.size, q.kind, d.chunks, d.live_chunks, d.dead_bytes, coalesce(d.written_at, q.queued_at),
         'delete', coalesce(d.reason, 'queued by an earlier gc that did not finish')
  FROM dv_files.gc_queue q LEFT JOIN pgdv_gc_plan d ON d.object_key = q.object_key AND d.action = 'delete';
END
$$;
COMMENT ON FUNCTION dv.gc_sweep(interval) IS 'Files gc, database half: deletes unreferenced contents and the index rows of the packs dv.gc_plan marks delete, and queues their objects in dv_files.gc_queue.
Returns dv.gc_plan''s rows; the delete rows are the whole queue. Needs dv.files_lock(''gc'') held by this session. The caller deletes each delete row''s object from the store, then calls dv.gc_done. pgdv gc does all of it.';

CREATE FUNCTION dv.gc_done(p_object_keys text[])
RETURNS integer
LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
  WITH d AS (DELETE FROM dv_files.gc_queue q WHERE q.object_key = ANY (p_object_keys) RETURNING 1)
  SELECT count(*)::int FROM d
$$;
COMMENT ON FUNCTION dv.gc_done(text[]) IS 'Files gc: forgets queued objects the caller has deleted from the store; returns how many.';

REVOKE EXECUTE ON FUNCTION dv.files_lock(text), dv.files_try_lock(text), dv.files_unlock(text), dv.files_lock_holders(),
  dv_internal.files_live_contents(), dv_internal.duration_text(interval), dv.gc_plan(interval), dv.gc_sweep(interval), dv.gc_done(text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION dv.files_lock(text), dv.files_try_lock(text), dv.files_unlock(text), dv.files_lock_holders() TO pgdv_writer;
GRANT EXECUTE ON FUNCTION dv.gc_plan(interval), dv.gc_sweep(interval), dv.gc_done(text[]) TO pgdv_admin;
