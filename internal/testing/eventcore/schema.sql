-- EventCore's PostgreSQL event store, recreated as the Tidemark fixture.
-- Idempotent: applying it twice leaves one copy of everything.

CREATE TABLE IF NOT EXISTS eventcore_events (
    event_id       UUID        PRIMARY KEY,
    stream_id      TEXT        NOT NULL,
    stream_version BIGINT      NOT NULL DEFAULT 0,
    event_type     TEXT        NOT NULL,
    event_data     JSONB       NOT NULL,
    metadata       JSONB       NOT NULL DEFAULT '{}'::jsonb,
    created_at     TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX IF NOT EXISTS eventcore_events_stream_version_idx
    ON eventcore_events (stream_id, stream_version);

CREATE INDEX IF NOT EXISTS eventcore_events_stream_idx
    ON eventcore_events (stream_id);

-- Versions: each inserted row gets its stream's current maximum + 1 (gap
-- free). When the transaction-local setting eventcore.expected_versions holds
-- a JSON object {stream id: expected version}, a stream whose current maximum
-- differs from its expectation raises version_conflict (SQLSTATE P0001);
-- otherwise the expectation is advanced so the statement's next row for the
-- same stream passes.
CREATE OR REPLACE FUNCTION eventcore_assign_stream_version()
RETURNS TRIGGER AS $$
DECLARE
    current_max BIGINT;
    expectations JSONB;
    expected BIGINT;
BEGIN
    SELECT COALESCE(
        (SELECT e.stream_version
           FROM eventcore_events e
          WHERE e.stream_id = NEW.stream_id
          ORDER BY e.stream_version DESC
          LIMIT 1
          FOR UPDATE),
        0) INTO current_max;

    expectations := NULLIF(current_setting('eventcore.expected_versions', true), '')::jsonb;
    IF expectations IS NOT NULL THEN
        expected := (expectations ->> NEW.stream_id)::bigint;
        IF expected IS NOT NULL AND expected <> current_max THEN
            RAISE EXCEPTION 'version_conflict: stream "%" expected version %, actual %',
                NEW.stream_id, expected, current_max
                USING ERRCODE = 'P0001';
        END IF;
        PERFORM set_config('eventcore.expected_versions',
            jsonb_set(expectations, ARRAY[NEW.stream_id], to_jsonb(current_max + 1))::text,
            true);
    END IF;

    NEW.stream_version := current_max + 1;
    RETURN NEW;
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS eventcore_version_trigger ON eventcore_events;
CREATE TRIGGER eventcore_version_trigger
    BEFORE INSERT ON eventcore_events
    FOR EACH ROW
    EXECUTE FUNCTION eventcore_assign_stream_version();

-- Immutability: events are never updated or deleted (SQLSTATE P0002).
CREATE OR REPLACE FUNCTION eventcore_prevent_update()
RETURNS TRIGGER AS $$
BEGIN
    RAISE EXCEPTION 'Events are immutable and cannot be updated'
        USING ERRCODE = 'P0002';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS eventcore_prevent_update_trigger ON eventcore_events;
CREATE TRIGGER eventcore_prevent_update_trigger
    BEFORE UPDATE ON eventcore_events
    FOR EACH ROW
    EXECUTE FUNCTION eventcore_prevent_update();

CREATE OR REPLACE FUNCTION eventcore_prevent_delete()
RETURNS TRIGGER AS $$
BEGIN
    RAISE EXCEPTION 'Events are immutable and cannot be deleted'
        USING ERRCODE = 'P0002';
END;
$$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS eventcore_prevent_delete_trigger ON eventcore_events;
CREATE TRIGGER eventcore_prevent_delete_trigger
    BEFORE DELETE ON eventcore_events
    FOR EACH ROW
    EXECUTE FUNCTION eventcore_prevent_delete();

-- Side tables EventCore keeps next to the log.
CREATE TABLE IF NOT EXISTS eventcore_subscription_versions (
    subscription_name TEXT        PRIMARY KEY,
    last_position     UUID        NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS eventcore_command_state_snapshots (
    snapshot_id        TEXT        PRIMARY KEY,
    state              JSONB       NOT NULL,
    stream_versions    JSONB       NOT NULL,
    replay_checkpoints JSONB       NOT NULL DEFAULT '[]'::jsonb,
    updated_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
