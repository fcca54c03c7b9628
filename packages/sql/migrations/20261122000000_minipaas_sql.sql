-- migrate:up
--
-- @minipaas/sql: durable queues and append-only streams inside PostgreSQL.
--
-- Public API (functions created in the current schema, normally "public"):
--   queues:  minipaas_queue_create, _configure, _enqueue, _enqueue_batch, _dequeue, _ack, _nack,
--            _extend, _sweep, _dead, _redrive, _metrics, _purge, _drop, _list
--   streams: minipaas_stream_create, _publish, _publish_batch, _consume, _consume_as, _checkpoint,
--            _seek, _position, _consumers, _metrics, _trim, _drop, _list
-- Storage lives in the "minipaas" schema: one table per queue (q_<name>), one dead-letter table per
-- queue (d_<name>) and one table per stream (s_<name>).
--
-- Safety: every function checks names against ^[a-z][a-z0-9_]{0,47}$ before anything else, looks the
-- name up in the registry, and only ever builds SQL with format('%I') from validated names.
-- The script is idempotent (IF NOT EXISTS / CREATE OR REPLACE) so it can also be applied without a
-- migration tool, any number of times.

SELECT pg_advisory_xact_lock(1296126289, 0);

CREATE SCHEMA IF NOT EXISTS minipaas;

CREATE TABLE IF NOT EXISTS minipaas.queues (
  name text PRIMARY KEY,
  visibility_timeout interval NOT NULL DEFAULT '30 seconds',
  max_attempts integer NOT NULL DEFAULT 5,
  backoff_base interval NOT NULL DEFAULT '1 second',
  backoff_max interval NOT NULL DEFAULT '1 hour',
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT queues_visibility_timeout_check CHECK (visibility_timeout > interval '0'),
  CONSTRAINT queues_max_attempts_check CHECK (max_attempts BETWEEN 1 AND 1000),
  CONSTRAINT queues_backoff_check CHECK (backoff_base >= interval '0' AND backoff_max >= backoff_base)
);

CREATE TABLE IF NOT EXISTS minipaas.streams (
  name text PRIMARY KEY,
  lock_key integer GENERATED ALWAYS AS IDENTITY UNIQUE,
  retention interval,
  created_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT streams_retention_check CHECK (retention IS NULL OR retention > interval '0')
);

CREATE TABLE IF NOT EXISTS minipaas.stream_checkpoints (
  stream text NOT NULL REFERENCES minipaas.streams (name) ON DELETE CASCADE,
  consumer text NOT NULL,
  last_id bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream, consumer)
);

DO $do$
BEGIN
  IF to_regtype('minipaas.queue_message') IS NULL THEN
    CREATE TYPE minipaas.queue_message AS (
      id bigint,
      payload jsonb,
      enqueued_at timestamptz,
      visible_at timestamptz,
      read_count integer
    );
  END IF;
  IF to_regtype('minipaas.dead_message') IS NULL THEN
    CREATE TYPE minipaas.dead_message AS (
      id bigint,
      payload jsonb,
      enqueued_at timestamptz,
      failed_at timestamptz,
      read_count integer,
      last_error text
    );
  END IF;
  IF to_regtype('minipaas.queue_metrics') IS NULL THEN
    CREATE TYPE minipaas.queue_metrics AS (
      name text,
      depth bigint,
      ready bigint,
      in_flight bigint,
      delayed bigint,
      dead bigint,
      oldest_age interval,
      measured_at timestamptz
    );
  END IF;
  IF to_regtype('minipaas.stream_event') IS NULL THEN
    CREATE TYPE minipaas.stream_event AS (
      id bigint,
      payload jsonb,
      published_at timestamptz
    );
  END IF;
  IF to_regtype('minipaas.stream_metrics') IS NULL THEN
    CREATE TYPE minipaas.stream_metrics AS (
      name text,
      events bigint,
      first_id bigint,
      last_id bigint,
      oldest_published_at timestamptz,
      consumers bigint,
      measured_at timestamptz
    );
  END IF;
END
$do$;

------------------------------------------------------------------------------------------------------
-- internal helpers (schema minipaas)
------------------------------------------------------------------------------------------------------

-- Raises the "invalid name" error. Called only on the failure path so the hot path stays a regex test.
CREATE OR REPLACE FUNCTION minipaas.raise_invalid_name(fn text, kind text, bad_name text)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION '%: invalid % name %: names must match ^[a-z][a-z0-9_]{0,47}$', fn, kind,
    coalesce(quote_literal(left(bad_name, 80)), 'NULL')
    USING ERRCODE = 'invalid_parameter_value',
          HINT = 'use lowercase letters, digits and underscores, starting with a letter, at most 48 characters';
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.raise_not_found(fn text, kind text, missing_name text)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION '%: % "%" does not exist', fn, kind, missing_name
    USING ERRCODE = 'undefined_object',
          HINT = format('create it first with minipaas_%s_create(%L)', kind, missing_name);
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.raise_bad_argument(fn text, kind text, obj_name text, msg text)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION '%: % "%": %', fn, kind, obj_name, msg USING ERRCODE = 'invalid_parameter_value';
END
$fn$;

-- Looks up a queue's registry row; raises a clear error for a bad or unknown name.
CREATE OR REPLACE FUNCTION minipaas.queue_config(fn text, queue_name text)
RETURNS minipaas.queues LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  q minipaas.queues;
BEGIN
  IF queue_name IS NULL OR queue_name !~ '^[a-z][a-z0-9_]{0,47}$' THEN
    PERFORM minipaas.raise_invalid_name(fn, 'queue', queue_name);
  END IF;
  SELECT * INTO q FROM minipaas.queues WHERE name = queue_name;
  IF NOT FOUND THEN
    PERFORM minipaas.raise_not_found(fn, 'queue', queue_name);
  END IF;
  RETURN q;
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.stream_config(fn text, stream_name text)
RETURNS minipaas.streams LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  s minipaas.streams;
BEGIN
  IF stream_name IS NULL OR stream_name !~ '^[a-z][a-z0-9_]{0,47}$' THEN
    PERFORM minipaas.raise_invalid_name(fn, 'stream', stream_name);
  END IF;
  SELECT * INTO s FROM minipaas.streams WHERE name = stream_name;
  IF NOT FOUND THEN
    PERFORM minipaas.raise_not_found(fn, 'stream', stream_name);
  END IF;
  RETURN s;
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas.check_batch(fn text, kind text, obj_name text, n integer, max_n integer)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $fn$
BEGIN
  IF n IS NULL OR n < 1 OR n > max_n THEN
    PERFORM minipaas.raise_bad_argument(fn, kind, obj_name,
      format('batch size must be between 1 and %s, got %s', max_n, coalesce(n::text, 'NULL')));
  END IF;
END
$fn$;

------------------------------------------------------------------------------------------------------
-- queues
------------------------------------------------------------------------------------------------------

-- Creates a queue (its message table, dead-letter table and indexes). Idempotent: creating an
-- existing queue does nothing (use minipaas_queue_configure to change its settings).
CREATE OR REPLACE FUNCTION minipaas_queue_create(
  queue_name text,
  visibility_timeout interval DEFAULT '30 seconds',
  max_attempts integer DEFAULT 5,
  backoff_base interval DEFAULT '1 second',
  backoff_max interval DEFAULT '1 hour'
) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  IF queue_name IS NULL OR queue_name !~ '^[a-z][a-z0-9_]{0,47}$' THEN
    PERFORM minipaas.raise_invalid_name('minipaas_queue_create', 'queue', queue_name);
  END IF;
  PERFORM pg_advisory_xact_lock(1296126289, hashtext(queue_name));
  IF EXISTS (SELECT 1 FROM minipaas.queues q WHERE q.name = queue_name) THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM minipaas.streams s WHERE s.name = queue_name) THEN
    RAISE EXCEPTION 'minipaas_queue_create: queue "%": a stream with this name exists (they share the NOTIFY channel)', queue_name
      USING ERRCODE = 'duplicate_object';
  END IF;
  INSERT INTO minipaas.queues (name, visibility_timeout, max_attempts, backoff_base, backoff_max)
  VALUES (queue_name, coalesce(visibility_timeout, '30 seconds'), coalesce(max_attempts, 5),
          coalesce(backoff_base, '1 second'), coalesce(backoff_max, '1 hour'));

  -- The hot table: kept small (ack deletes), vacuumed early and often.
  EXECUTE format($sql$
    CREATE TABLE minipaas.%1$I (
      id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
      payload jsonb NOT NULL,
      enqueued_at timestamptz NOT NULL DEFAULT now(),
      visible_at timestamptz NOT NULL DEFAULT now(),
      read_count integer NOT NULL DEFAULT 0,
      max_attempts integer NOT NULL,
      dequeued_at timestamptz,
      last_error text
    ) WITH (
      autovacuum_vacuum_scale_factor = 0.01,
      autovacuum_vacuum_threshold = 500,
      autovacuum_vacuum_insert_scale_factor = 0.05,
      autovacuum_analyze_scale_factor = 0.05,
      autovacuum_vacuum_cost_delay = 0
    )$sql$, 'q_' || queue_name);
  -- Partial index over deliverable rows (attempts left), in claim order: dequeue is one index range scan.
  EXECUTE format('CREATE INDEX %I ON minipaas.%I (visible_at, id) WHERE read_count < max_attempts',
    'q_' || queue_name || '_ready', 'q_' || queue_name);
  -- Tiny partial index over rows on their final attempt, for the dead-letter sweep.
  EXECUTE format('CREATE INDEX %I ON minipaas.%I (visible_at) WHERE read_count >= max_attempts',
    'q_' || queue_name || '_final', 'q_' || queue_name);
  EXECUTE format($sql$
    CREATE TABLE minipaas.%1$I (
      id bigint PRIMARY KEY,
      payload jsonb NOT NULL,
      enqueued_at timestamptz NOT NULL,
      failed_at timestamptz NOT NULL DEFAULT now(),
      read_count integer NOT NULL,
      last_error text
    )$sql$, 'd_' || queue_name);
  PERFORM minipaas.queue_install(queue_name);
END
$fn$;

-- Changes a queue's settings; NULL leaves a setting unchanged. New max_attempts applies to messages
-- enqueued afterwards.
CREATE OR REPLACE FUNCTION minipaas_queue_configure(
  queue_name text,
  visibility_timeout interval DEFAULT NULL,
  max_attempts integer DEFAULT NULL,
  backoff_base interval DEFAULT NULL,
  backoff_max interval DEFAULT NULL
) RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM minipaas.queue_config('minipaas_queue_configure', queue_name);
  UPDATE minipaas.queues q SET
    visibility_timeout = coalesce(minipaas_queue_configure.visibility_timeout, q.visibility_timeout),
    max_attempts = coalesce(minipaas_queue_configure.max_attempts, q.max_attempts),
    backoff_base = coalesce(minipaas_queue_configure.backoff_base, q.backoff_base),
    backoff_max = coalesce(minipaas_queue_configure.backoff_max, q.backoff_max)
  WHERE q.name = queue_name;
  -- the settings are compiled into the queue's entry points
  PERFORM minipaas.queue_install(queue_name);
END
$fn$;

-- Per-queue entry points. Every queue gets small PL/pgSQL functions with *static* SQL on its own
-- tables (minipaas.f_<queue>_enq, _enb, _deq, _ack, _nak, _swp), generated here from validated names
-- with format('%I'/'%L'). Static SQL lets PostgreSQL cache the plans per session, so the hot path
-- does no parsing or planning; the queue's settings are compiled in (minipaas_queue_configure
-- regenerates them). The public minipaas_queue_* functions validate the name and dispatch to these;
-- the TypeScript client calls them directly.
CREATE OR REPLACE FUNCTION minipaas.queue_install(queue_name text)
RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE
  q minipaas.queues;
  t text;
  d text;
  f text := 'f_' || queue_name;
BEGIN
  IF queue_name IS NULL OR queue_name !~ '^[a-z][a-z0-9_]{0,47}$' THEN
    PERFORM minipaas.raise_invalid_name('minipaas.queue_install', 'queue', queue_name);
  END IF;
  SELECT * INTO q FROM minipaas.queues r WHERE r.name = queue_name;
  IF NOT FOUND THEN
    PERFORM minipaas.raise_not_found('minipaas.queue_install', 'queue', queue_name);
  END IF;
  t := format('minipaas.%I', 'q_' || queue_name);
  d := format('minipaas.%I', 'd_' || queue_name);

  -- enqueue one
  EXECUTE format('CREATE OR REPLACE FUNCTION minipaas.%I(payload jsonb, delay interval)
    RETURNS SETOF minipaas.queue_message LANGUAGE plpgsql AS %L', f || '_enq', format($body$
#variable_conflict use_column
BEGIN
  IF payload IS NULL THEN
    PERFORM minipaas.raise_bad_argument('minipaas_queue_enqueue', 'queue', %2$L, 'payload must not be NULL');
  END IF;
  RETURN QUERY INSERT INTO %1$s AS m (payload, visible_at, max_attempts)
    VALUES (payload, now() + coalesce(delay, interval '0'), %3$s)
    RETURNING m.id, m.payload, m.enqueued_at, m.visible_at, m.read_count;
  PERFORM pg_notify(%2$L, '');
END$body$, t, queue_name, q.max_attempts));

  -- enqueue many
  EXECUTE format('CREATE OR REPLACE FUNCTION minipaas.%I(payloads jsonb[], delay interval)
    RETURNS SETOF minipaas.queue_message LANGUAGE plpgsql AS %L', f || '_enb', format($body$
#variable_conflict use_column
BEGIN
  IF payloads IS NULL OR cardinality(payloads) = 0 THEN
    RETURN;
  END IF;
  IF cardinality(payloads) > 10000 THEN
    PERFORM minipaas.check_batch('minipaas_queue_enqueue_batch', 'queue', %2$L, cardinality(payloads), 10000);
  END IF;
  IF array_position(payloads, NULL) IS NOT NULL THEN
    PERFORM minipaas.raise_bad_argument('minipaas_queue_enqueue_batch', 'queue', %2$L, 'payloads must not contain NULL');
  END IF;
  RETURN QUERY INSERT INTO %1$s AS m (payload, visible_at, max_attempts)
    SELECT p, now() + coalesce(delay, interval '0'), %3$s FROM unnest(payloads) WITH ORDINALITY AS x(p, n) ORDER BY n
    RETURNING m.id, m.payload, m.enqueued_at, m.visible_at, m.read_count;
  PERFORM pg_notify(%2$L, '');
END$body$, t, queue_name, q.max_attempts));

  -- sweep: dead-letter expired final attempts
  EXECUTE format('CREATE OR REPLACE FUNCTION minipaas.%I()
    RETURNS integer LANGUAGE plpgsql AS %L', f || '_swp', format($body$
#variable_conflict use_column
DECLARE
  n integer;
BEGIN
  WITH gone AS (
    DELETE FROM %1$s m
    WHERE m.id = ANY(ARRAY(
      SELECT id FROM %1$s
      WHERE read_count >= max_attempts AND visible_at <= now()
      ORDER BY visible_at LIMIT 1000
      FOR UPDATE SKIP LOCKED))
    RETURNING m.id, m.payload, m.enqueued_at, m.read_count, m.last_error
  )
  INSERT INTO %2$s (id, payload, enqueued_at, read_count, last_error)
  SELECT gone.id, gone.payload, gone.enqueued_at, gone.read_count,
         concat_ws('; ', gone.last_error, 'visibility timeout expired on the final attempt') FROM gone;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END$body$, t, d));

  -- dequeue: claim in one statement
  EXECUTE format('CREATE OR REPLACE FUNCTION minipaas.%I(batch_size integer, vt interval)
    RETURNS SETOF minipaas.queue_message LANGUAGE plpgsql AS %L', f || '_deq', format($body$
#variable_conflict use_column
DECLARE
  n integer;
BEGIN
  IF batch_size IS NULL OR batch_size < 1 OR batch_size > 1000 THEN
    PERFORM minipaas.check_batch('minipaas_queue_dequeue', 'queue', %2$L, batch_size, 1000);
  END IF;
  IF vt IS NOT NULL AND vt <= interval '0' THEN
    PERFORM minipaas.raise_bad_argument('minipaas_queue_dequeue', 'queue', %2$L, 'visibility_timeout must be positive');
  END IF;
  -- id = ANY(ARRAY(subquery)) keeps the cached generic plan an index scan whatever the batch size
  RETURN QUERY
  WITH u AS (
    UPDATE %1$s m
    SET visible_at = now() + coalesce(vt, %3$L::interval), read_count = m.read_count + 1, dequeued_at = now()
    WHERE m.id = ANY(ARRAY(
      SELECT id FROM %1$s
      WHERE visible_at <= now() AND read_count < max_attempts
      ORDER BY visible_at, id
      LIMIT batch_size
      FOR UPDATE SKIP LOCKED))
    RETURNING m.id, m.payload, m.enqueued_at, m.visible_at, m.read_count
  )
  SELECT u.id, u.payload, u.enqueued_at, u.visible_at, u.read_count FROM u ORDER BY u.id;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n < batch_size THEN
    -- the queue is (nearly) drained: a cheap moment to dead-letter expired final attempts
    PERFORM minipaas.%4$I();
  END IF;
END$body$, t, queue_name, q.visibility_timeout::text, f || '_swp'));

  -- ack: delete
  EXECUTE format('CREATE OR REPLACE FUNCTION minipaas.%I(ids bigint[])
    RETURNS integer LANGUAGE plpgsql AS %L', f || '_ack', format($body$
#variable_conflict use_column
DECLARE
  n integer;
BEGIN
  IF ids IS NULL OR cardinality(ids) = 0 THEN
    RETURN 0;
  END IF;
  DELETE FROM %1$s WHERE id = ANY(ids);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END$body$, t));

  -- nack: retry with exponential backoff, or dead-letter after max attempts
  EXECUTE format('CREATE OR REPLACE FUNCTION minipaas.%I(ids bigint[], error text, delay interval)
    RETURNS TABLE (retried integer, dead integer) LANGUAGE plpgsql AS %L', f || '_nak', format($body$
#variable_conflict use_column
BEGIN
  IF ids IS NULL OR cardinality(ids) = 0 THEN
    RETURN QUERY SELECT 0, 0;
    RETURN;
  END IF;
  RETURN QUERY
  WITH m AS (
    SELECT id, read_count, max_attempts FROM %1$s WHERE id = ANY(ids) FOR UPDATE
  ), gone AS (
    DELETE FROM %1$s x USING m
    WHERE x.id = m.id AND m.read_count >= m.max_attempts
    RETURNING x.id, x.payload, x.enqueued_at, x.read_count
  ), ins AS (
    INSERT INTO %2$s (id, payload, enqueued_at, read_count, last_error)
    SELECT gone.id, gone.payload, gone.enqueued_at, gone.read_count, error FROM gone
    RETURNING id
  ), retry AS (
    UPDATE %1$s x
    SET visible_at = now() + coalesce(delay,
          least(%4$L::interval, %3$L::interval * power(2, least(greatest(m.read_count - 1, 0), 40)))),
        dequeued_at = NULL,
        last_error = error
    FROM m WHERE x.id = m.id AND m.read_count < m.max_attempts
    RETURNING x.id
  )
  SELECT (SELECT count(*) FROM retry)::integer, (SELECT count(*) FROM ins)::integer;
END$body$, t, d, q.backoff_base::text, q.backoff_max::text));
END
$fn$;

-- The public functions: validate the name, check the queue exists, dispatch to its entry point.

-- Enqueues one message; returns the new row and notifies channel <queue_name>.
-- Notifications are coalesced: Postgres folds identical (channel, payload) pairs within a
-- transaction, so enqueuing many messages in one transaction sends one NOTIFY.
CREATE OR REPLACE FUNCTION minipaas_queue_enqueue(queue_name text, payload jsonb, delay interval DEFAULT NULL)
RETURNS SETOF minipaas.queue_message LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM minipaas.queue_config('minipaas_queue_enqueue', queue_name);
  RETURN QUERY EXECUTE format('SELECT * FROM minipaas.%I($1, $2)', 'f_' || queue_name || '_enq') USING payload, delay;
END
$fn$;

-- Enqueues up to 10000 messages in one statement (in array order); one NOTIFY.
CREATE OR REPLACE FUNCTION minipaas_queue_enqueue_batch(queue_name text, payloads jsonb[], delay interval DEFAULT NULL)
RETURNS SETOF minipaas.queue_message LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM minipaas.queue_config('minipaas_queue_enqueue_batch', queue_name);
  RETURN QUERY EXECUTE format('SELECT * FROM minipaas.%I($1, $2)', 'f_' || queue_name || '_enb') USING payloads, delay;
END
$fn$;

-- Moves messages whose final attempt's visibility timeout expired (consumer crashed or hung on its
-- last try) to the dead-letter table. Returns how many were moved.
CREATE OR REPLACE FUNCTION minipaas_queue_sweep(queue_name text)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  n integer;
BEGIN
  PERFORM minipaas.queue_config('minipaas_queue_sweep', queue_name);
  EXECUTE format('SELECT minipaas.%I()', 'f_' || queue_name || '_swp') INTO n;
  RETURN n;
END
$fn$;

-- Claims up to batch_size ready messages (1..1000) for visibility_timeout (default: the queue's).
-- One statement: FOR UPDATE SKIP LOCKED in a CTE + UPDATE ... RETURNING, so concurrent consumers
-- never get the same message. Each claim increments read_count.
CREATE OR REPLACE FUNCTION minipaas_queue_dequeue(queue_name text, batch_size integer DEFAULT 1,
  visibility_timeout interval DEFAULT NULL)
RETURNS SETOF minipaas.queue_message LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM minipaas.queue_config('minipaas_queue_dequeue', queue_name);
  RETURN QUERY EXECUTE format('SELECT * FROM minipaas.%I($1, $2)', 'f_' || queue_name || '_deq')
    USING batch_size, visibility_timeout;
END
$fn$;

-- Completes messages (deletes them). Returns how many were deleted; unknown ids are ignored.
CREATE OR REPLACE FUNCTION minipaas_queue_ack(queue_name text, ids bigint[])
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  n integer;
BEGIN
  PERFORM minipaas.queue_config('minipaas_queue_ack', queue_name);
  EXECUTE format('SELECT minipaas.%I($1)', 'f_' || queue_name || '_ack') INTO n USING ids;
  RETURN n;
END
$fn$;

-- Fails messages: each one is retried after an exponential backoff
-- (least(backoff_max, backoff_base * 2^(read_count-1)), or after `delay` when given), unless it has
-- used its max_attempts, in which case it moves to the dead-letter table with `error`.
CREATE OR REPLACE FUNCTION minipaas_queue_nack(queue_name text, ids bigint[], error text DEFAULT NULL,
  delay interval DEFAULT NULL)
RETURNS TABLE (retried integer, dead integer) LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM minipaas.queue_config('minipaas_queue_nack', queue_name);
  RETURN QUERY EXECUTE format('SELECT * FROM minipaas.%I($1, $2, $3)', 'f_' || queue_name || '_nak')
    USING ids, error, delay;
END
$fn$;

-- Extends the visibility timeout of in-flight messages (a heartbeat for long handlers).
CREATE OR REPLACE FUNCTION minipaas_queue_extend(queue_name text, ids bigint[], visibility_timeout interval)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  n integer;
BEGIN
  PERFORM minipaas.queue_config('minipaas_queue_extend', queue_name);
  IF visibility_timeout IS NULL OR visibility_timeout <= interval '0' THEN
    PERFORM minipaas.raise_bad_argument('minipaas_queue_extend', 'queue', queue_name,
      'visibility_timeout must be positive');
  END IF;
  IF ids IS NULL OR cardinality(ids) = 0 THEN
    RETURN 0;
  END IF;
  EXECUTE format('UPDATE minipaas.%I SET visible_at = now() + $2
                  WHERE id = ANY($1) AND dequeued_at IS NOT NULL', 'q_' || queue_name)
    USING ids, visibility_timeout;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$fn$;

-- Lists dead-lettered messages, oldest id first, after `after_id`.
CREATE OR REPLACE FUNCTION minipaas_queue_dead(queue_name text, max_rows integer DEFAULT 100, after_id bigint DEFAULT 0)
RETURNS SETOF minipaas.dead_message LANGUAGE plpgsql STABLE AS $fn$
BEGIN
  PERFORM minipaas.queue_config('minipaas_queue_dead', queue_name);
  PERFORM minipaas.check_batch('minipaas_queue_dead', 'queue', queue_name, max_rows, 10000);
  RETURN QUERY EXECUTE format(
    'SELECT id, payload, enqueued_at, failed_at, read_count, last_error FROM minipaas.%I
     WHERE id > $1 ORDER BY id LIMIT $2', 'd_' || queue_name)
    USING coalesce(after_id, 0), max_rows;
END
$fn$;

-- Moves dead-lettered messages (all, or the given ids) back into the queue with a fresh attempt
-- budget. Returns how many were re-driven.
CREATE OR REPLACE FUNCTION minipaas_queue_redrive(queue_name text, ids bigint[] DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql AS $fn$
DECLARE
  q minipaas.queues := minipaas.queue_config('minipaas_queue_redrive', queue_name);
  n integer;
BEGIN
  EXECUTE format($sql$
    WITH gone AS (
      DELETE FROM minipaas.%2$I WHERE $1::bigint[] IS NULL OR id = ANY($1)
      RETURNING id, payload, enqueued_at, last_error
    ), ins AS (
      INSERT INTO minipaas.%1$I (id, payload, enqueued_at, visible_at, max_attempts, last_error)
      SELECT id, payload, enqueued_at, now(), $2, last_error FROM gone ORDER BY id
      RETURNING id
    )
    SELECT count(*) FROM ins$sql$, 'q_' || queue_name, 'd_' || queue_name)
    INTO n USING ids, q.max_attempts;
  IF n > 0 THEN
    PERFORM pg_notify(queue_name, '');
  END IF;
  RETURN n;
END
$fn$;

-- Queue metrics: depth (all rows), ready, in flight (leased), delayed (scheduled or backing off),
-- dead-lettered, and the age of the oldest message. Sweeps expired final attempts first.
CREATE OR REPLACE FUNCTION minipaas_queue_metrics(queue_name text)
RETURNS SETOF minipaas.queue_metrics LANGUAGE plpgsql AS $fn$
BEGIN
  PERFORM minipaas.queue_config('minipaas_queue_metrics', queue_name);
  PERFORM minipaas_queue_sweep(queue_name);
  RETURN QUERY EXECUTE format($sql$
    SELECT $1::text,
           count(*),
           count(*) FILTER (WHERE visible_at <= now() AND read_count < max_attempts),
           count(*) FILTER (WHERE dequeued_at IS NOT NULL AND (visible_at > now() OR read_count >= max_attempts)),
           count(*) FILTER (WHERE dequeued_at IS NULL AND visible_at > now()),
           (SELECT count(*) FROM minipaas.%2$I),
           now() - min(enqueued_at),
           now()
    FROM minipaas.%1$I$sql$, 'q_' || queue_name, 'd_' || queue_name)
    USING queue_name;
END
$fn$;

-- Deletes all messages of a queue (and, if include_dead, its dead letters). Returns rows deleted.
CREATE OR REPLACE FUNCTION minipaas_queue_purge(queue_name text, include_dead boolean DEFAULT false)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  n bigint;
  d bigint := 0;
BEGIN
  PERFORM minipaas.queue_config('minipaas_queue_purge', queue_name);
  EXECUTE format('DELETE FROM minipaas.%I', 'q_' || queue_name);
  GET DIAGNOSTICS n = ROW_COUNT;
  IF include_dead THEN
    EXECUTE format('DELETE FROM minipaas.%I', 'd_' || queue_name);
    GET DIAGNOSTICS d = ROW_COUNT;
  END IF;
  RETURN n + d;
END
$fn$;

-- Drops a queue with its messages and dead letters. Returns false when it did not exist.
CREATE OR REPLACE FUNCTION minipaas_queue_drop(queue_name text)
RETURNS boolean LANGUAGE plpgsql AS $fn$
BEGIN
  IF queue_name IS NULL OR queue_name !~ '^[a-z][a-z0-9_]{0,47}$' THEN
    PERFORM minipaas.raise_invalid_name('minipaas_queue_drop', 'queue', queue_name);
  END IF;
  PERFORM pg_advisory_xact_lock(1296126289, hashtext(queue_name));
  DELETE FROM minipaas.queues q WHERE q.name = queue_name;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  EXECUTE format('DROP TABLE IF EXISTS minipaas.%I, minipaas.%I', 'q_' || queue_name, 'd_' || queue_name);
  EXECUTE format('DROP FUNCTION IF EXISTS minipaas.%I, minipaas.%I, minipaas.%I, minipaas.%I, minipaas.%I, minipaas.%I',
    'f_' || queue_name || '_enq', 'f_' || queue_name || '_enb', 'f_' || queue_name || '_deq',
    'f_' || queue_name || '_ack', 'f_' || queue_name || '_nak', 'f_' || queue_name || '_swp');
  RETURN true;
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas_queue_list()
RETURNS SETOF minipaas.queues LANGUAGE sql STABLE AS $fn$
  SELECT * FROM minipaas.queues ORDER BY name
$fn$;

------------------------------------------------------------------------------------------------------
-- streams
------------------------------------------------------------------------------------------------------

-- Creates an append-only stream. Idempotent. `retention` (optional) is applied by
-- minipaas_stream_trim(name) without bounds.
CREATE OR REPLACE FUNCTION minipaas_stream_create(stream_name text, retention interval DEFAULT NULL)
RETURNS void LANGUAGE plpgsql AS $fn$
BEGIN
  IF stream_name IS NULL OR stream_name !~ '^[a-z][a-z0-9_]{0,47}$' THEN
    PERFORM minipaas.raise_invalid_name('minipaas_stream_create', 'stream', stream_name);
  END IF;
  PERFORM pg_advisory_xact_lock(1296126289, hashtext(stream_name));
  IF EXISTS (SELECT 1 FROM minipaas.streams s WHERE s.name = stream_name) THEN
    RETURN;
  END IF;
  IF EXISTS (SELECT 1 FROM minipaas.queues q WHERE q.name = stream_name) THEN
    RAISE EXCEPTION 'minipaas_stream_create: stream "%": a queue with this name exists (they share the NOTIFY channel)', stream_name
      USING ERRCODE = 'duplicate_object';
  END IF;
  INSERT INTO minipaas.streams (name, retention) VALUES (stream_name, retention);
  EXECUTE format($sql$
    CREATE TABLE minipaas.%I (
      id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
      payload jsonb NOT NULL,
      published_at timestamptz NOT NULL DEFAULT now()
    )$sql$, 's_' || stream_name);
END
$fn$;

-- Appends events. Publishers of one stream are serialized by a transaction-scoped advisory lock
-- taken before the id is drawn, so ids become visible in id order: a reader that has seen id N can
-- never later discover an id below N (no out-of-order-commit gaps). The lock is held until the
-- publishing transaction ends, so keep publishing transactions short.
CREATE OR REPLACE FUNCTION minipaas_stream_publish(stream_name text, payload jsonb)
RETURNS SETOF minipaas.stream_event LANGUAGE plpgsql AS $fn$
DECLARE
  s minipaas.streams := minipaas.stream_config('minipaas_stream_publish', stream_name);
BEGIN
  IF payload IS NULL THEN
    PERFORM minipaas.raise_bad_argument('minipaas_stream_publish', 'stream', stream_name, 'payload must not be NULL');
  END IF;
  PERFORM pg_advisory_xact_lock(1296126290, s.lock_key);
  RETURN QUERY EXECUTE format('INSERT INTO minipaas.%I (payload) VALUES ($1) RETURNING id, payload, published_at',
    's_' || stream_name) USING payload;
  PERFORM pg_notify(stream_name, '');
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas_stream_publish_batch(stream_name text, payloads jsonb[])
RETURNS SETOF minipaas.stream_event LANGUAGE plpgsql AS $fn$
DECLARE
  s minipaas.streams := minipaas.stream_config('minipaas_stream_publish_batch', stream_name);
BEGIN
  IF payloads IS NULL OR cardinality(payloads) = 0 THEN
    RETURN;
  END IF;
  PERFORM minipaas.check_batch('minipaas_stream_publish_batch', 'stream', stream_name, cardinality(payloads), 10000);
  IF array_position(payloads, NULL) IS NOT NULL THEN
    PERFORM minipaas.raise_bad_argument('minipaas_stream_publish_batch', 'stream', stream_name,
      'payloads must not contain NULL');
  END IF;
  PERFORM pg_advisory_xact_lock(1296126290, s.lock_key);
  RETURN QUERY EXECUTE format(
    'INSERT INTO minipaas.%I (payload) SELECT p FROM unnest($1) WITH ORDINALITY AS t(p, n) ORDER BY n
     RETURNING id, payload, published_at', 's_' || stream_name) USING payloads;
  PERFORM pg_notify(stream_name, '');
END
$fn$;

-- Returns up to batch_size (1..1000) events with id > after_id, in id order.
CREATE OR REPLACE FUNCTION minipaas_stream_consume(stream_name text, after_id bigint DEFAULT 0, batch_size integer DEFAULT 100)
RETURNS SETOF minipaas.stream_event LANGUAGE plpgsql STABLE AS $fn$
BEGIN
  PERFORM minipaas.stream_config('minipaas_stream_consume', stream_name);
  PERFORM minipaas.check_batch('minipaas_stream_consume', 'stream', stream_name, batch_size, 1000);
  RETURN QUERY EXECUTE format(
    'SELECT id, payload, published_at FROM minipaas.%I WHERE id > $1 ORDER BY id LIMIT $2', 's_' || stream_name)
    USING coalesce(after_id, 0), batch_size;
END
$fn$;

-- The stored position (last processed id) of a named consumer; 0 when it has none yet.
CREATE OR REPLACE FUNCTION minipaas_stream_position(stream_name text, consumer text)
RETURNS bigint LANGUAGE plpgsql STABLE AS $fn$
DECLARE
  pos bigint;
BEGIN
  PERFORM minipaas.stream_config('minipaas_stream_position', stream_name);
  SELECT c.last_id INTO pos FROM minipaas.stream_checkpoints c WHERE c.stream = stream_name AND c.consumer = $2;
  RETURN coalesce(pos, 0);
END
$fn$;

-- Events after a named consumer's checkpoint (does not move the checkpoint).
CREATE OR REPLACE FUNCTION minipaas_stream_consume_as(stream_name text, consumer text, batch_size integer DEFAULT 100)
RETURNS SETOF minipaas.stream_event LANGUAGE plpgsql STABLE AS $fn$
BEGIN
  IF consumer IS NULL OR length(consumer) NOT BETWEEN 1 AND 200 THEN
    PERFORM minipaas.raise_bad_argument('minipaas_stream_consume_as', 'stream', stream_name,
      'consumer must be 1 to 200 characters');
  END IF;
  RETURN QUERY SELECT * FROM minipaas_stream_consume(stream_name, minipaas_stream_position(stream_name, consumer), batch_size);
END
$fn$;

-- Records that `consumer` has processed everything up to last_id. Never moves backwards (use
-- minipaas_stream_seek for that). Returns the stored position.
CREATE OR REPLACE FUNCTION minipaas_stream_checkpoint(stream_name text, consumer text, last_id bigint)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  pos bigint;
BEGIN
  PERFORM minipaas.stream_config('minipaas_stream_checkpoint', stream_name);
  IF consumer IS NULL OR length(consumer) NOT BETWEEN 1 AND 200 THEN
    PERFORM minipaas.raise_bad_argument('minipaas_stream_checkpoint', 'stream', stream_name,
      'consumer must be 1 to 200 characters');
  END IF;
  IF last_id IS NULL OR last_id < 0 THEN
    PERFORM minipaas.raise_bad_argument('minipaas_stream_checkpoint', 'stream', stream_name,
      'last_id must be a non-negative id');
  END IF;
  INSERT INTO minipaas.stream_checkpoints AS c (stream, consumer, last_id)
  VALUES (stream_name, $2, $3)
  ON CONFLICT ON CONSTRAINT stream_checkpoints_pkey DO UPDATE
    SET last_id = greatest(c.last_id, excluded.last_id), updated_at = now()
  RETURNING c.last_id INTO pos;
  RETURN pos;
END
$fn$;

-- Sets a named consumer's position to any id (rewind or skip ahead).
CREATE OR REPLACE FUNCTION minipaas_stream_seek(stream_name text, consumer text, last_id bigint)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  pos bigint;
BEGIN
  PERFORM minipaas.stream_config('minipaas_stream_seek', stream_name);
  IF consumer IS NULL OR length(consumer) NOT BETWEEN 1 AND 200 THEN
    PERFORM minipaas.raise_bad_argument('minipaas_stream_seek', 'stream', stream_name,
      'consumer must be 1 to 200 characters');
  END IF;
  IF last_id IS NULL OR last_id < 0 THEN
    PERFORM minipaas.raise_bad_argument('minipaas_stream_seek', 'stream', stream_name,
      'last_id must be a non-negative id');
  END IF;
  INSERT INTO minipaas.stream_checkpoints AS c (stream, consumer, last_id)
  VALUES (stream_name, $2, $3)
  ON CONFLICT ON CONSTRAINT stream_checkpoints_pkey DO UPDATE SET last_id = excluded.last_id, updated_at = now()
  RETURNING c.last_id INTO pos;
  RETURN pos;
END
$fn$;

-- Named consumers of a stream with their position and lag (events after their position).
CREATE OR REPLACE FUNCTION minipaas_stream_consumers(stream_name text)
RETURNS TABLE (consumer text, last_id bigint, lag bigint, updated_at timestamptz)
LANGUAGE plpgsql STABLE AS $fn$
BEGIN
  PERFORM minipaas.stream_config('minipaas_stream_consumers', stream_name);
  RETURN QUERY EXECUTE format(
    'SELECT c.consumer, c.last_id,
            (SELECT count(*) FROM minipaas.%I e WHERE e.id > c.last_id), c.updated_at
     FROM minipaas.stream_checkpoints c WHERE c.stream = $1 ORDER BY c.consumer', 's_' || stream_name)
    USING stream_name;
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas_stream_metrics(stream_name text)
RETURNS SETOF minipaas.stream_metrics LANGUAGE plpgsql STABLE AS $fn$
BEGIN
  PERFORM minipaas.stream_config('minipaas_stream_metrics', stream_name);
  RETURN QUERY EXECUTE format(
    'SELECT $1::text, count(*), min(id), max(id), min(published_at),
            (SELECT count(*) FROM minipaas.stream_checkpoints c WHERE c.stream = $1), now()
     FROM minipaas.%I', 's_' || stream_name)
    USING stream_name;
END
$fn$;

-- Deletes old events: those with id < before_id and/or published before now() - older_than. With
-- neither bound it applies the stream's retention (no-op when the stream has none). Returns rows deleted.
CREATE OR REPLACE FUNCTION minipaas_stream_trim(stream_name text, before_id bigint DEFAULT NULL,
  older_than interval DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql AS $fn$
DECLARE
  s minipaas.streams := minipaas.stream_config('minipaas_stream_trim', stream_name);
  age interval := older_than;
  n bigint;
BEGIN
  IF before_id IS NULL AND age IS NULL THEN
    age := s.retention;
    IF age IS NULL THEN
      RETURN 0;
    END IF;
  END IF;
  EXECUTE format('DELETE FROM minipaas.%I WHERE ($1::bigint IS NULL OR id < $1)
                  AND ($2::interval IS NULL OR published_at < now() - $2)', 's_' || stream_name)
    USING before_id, age;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas_stream_drop(stream_name text)
RETURNS boolean LANGUAGE plpgsql AS $fn$
BEGIN
  IF stream_name IS NULL OR stream_name !~ '^[a-z][a-z0-9_]{0,47}$' THEN
    PERFORM minipaas.raise_invalid_name('minipaas_stream_drop', 'stream', stream_name);
  END IF;
  PERFORM pg_advisory_xact_lock(1296126289, hashtext(stream_name));
  DELETE FROM minipaas.streams s WHERE s.name = stream_name;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  EXECUTE format('DROP TABLE IF EXISTS minipaas.%I', 's_' || stream_name);
  RETURN true;
END
$fn$;

CREATE OR REPLACE FUNCTION minipaas_stream_list()
RETURNS TABLE (name text, retention interval, created_at timestamptz) LANGUAGE sql STABLE AS $fn$
  SELECT s.name, s.retention, s.created_at FROM minipaas.streams s ORDER BY s.name
$fn$;

-- (Re)generate every existing queue's entry points, so re-applying the migration updates them.
SELECT minipaas.queue_install(name) FROM minipaas.queues;

-- migrate:down

DROP FUNCTION IF EXISTS minipaas_queue_create(text, interval, integer, interval, interval);
DROP FUNCTION IF EXISTS minipaas_queue_configure(text, interval, integer, interval, interval);
DROP FUNCTION IF EXISTS minipaas_queue_enqueue(text, jsonb, interval);
DROP FUNCTION IF EXISTS minipaas_queue_enqueue_batch(text, jsonb[], interval);
DROP FUNCTION IF EXISTS minipaas_queue_sweep(text);
DROP FUNCTION IF EXISTS minipaas_queue_dequeue(text, integer, interval);
DROP FUNCTION IF EXISTS minipaas_queue_ack(text, bigint[]);
DROP FUNCTION IF EXISTS minipaas_queue_nack(text, bigint[], text, interval);
DROP FUNCTION IF EXISTS minipaas_queue_extend(text, bigint[], interval);
DROP FUNCTION IF EXISTS minipaas_queue_dead(text, integer, bigint);
DROP FUNCTION IF EXISTS minipaas_queue_redrive(text, bigint[]);
DROP FUNCTION IF EXISTS minipaas_queue_metrics(text);
DROP FUNCTION IF EXISTS minipaas_queue_purge(text, boolean);
DROP FUNCTION IF EXISTS minipaas_queue_drop(text);
DROP FUNCTION IF EXISTS minipaas_queue_list();
DROP FUNCTION IF EXISTS minipaas_stream_create(text, interval);
DROP FUNCTION IF EXISTS minipaas_stream_publish(text, jsonb);
DROP FUNCTION IF EXISTS minipaas_stream_publish_batch(text, jsonb[]);
DROP FUNCTION IF EXISTS minipaas_stream_consume(text, bigint, integer);
DROP FUNCTION IF EXISTS minipaas_stream_position(text, text);
DROP FUNCTION IF EXISTS minipaas_stream_consume_as(text, text, integer);
DROP FUNCTION IF EXISTS minipaas_stream_checkpoint(text, text, bigint);
DROP FUNCTION IF EXISTS minipaas_stream_seek(text, text, bigint);
DROP FUNCTION IF EXISTS minipaas_stream_consumers(text);
DROP FUNCTION IF EXISTS minipaas_stream_metrics(text);
DROP FUNCTION IF EXISTS minipaas_stream_trim(text, bigint, interval);
DROP FUNCTION IF EXISTS minipaas_stream_drop(text);
DROP FUNCTION IF EXISTS minipaas_stream_list();
DROP SCHEMA IF EXISTS minipaas CASCADE;
