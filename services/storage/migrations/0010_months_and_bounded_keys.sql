-- Months that close and are archived, and a dedupe key store bounded by them (issue 10,
-- contract Revision 2 "Closed months, restatements and receipts").
--
-- months: one row per month the platform has counted an event in (created by the aggregator
-- on the month's first event), open -> closed -> archived. Closing (cutoff, report snapshots)
-- is built on top of this table; archiving drops the month's keys.
CREATE TABLE months (
    month       date        PRIMARY KEY CHECK (extract(day FROM month) = 1),
    state       text        NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'closed', 'archived')),
    opened_at   timestamptz NOT NULL DEFAULT now(),
    cutoff      timestamptz,            -- events received by then are in the closed figures
    closed_at   timestamptz,
    archived_at timestamptz,
    CHECK ((state = 'open') = (closed_at IS NULL)),
    CHECK ((state = 'archived') = (archived_at IS NOT NULL))
);

-- The dedupe key of an event, 16 bytes as a uuid: the first 6 bytes of md5("<stream>/<org_code>"),
-- then the first 10 of md5("<stream>/<org_code>/<event_id>"). Stream names are [a-z][a-z0-9_]*
-- and codes [A-Za-z0-9._:-]+, neither holds a '/', so the texts are unambiguous. The
-- institution's prefix keeps its keys together in every month's index: a batch's lookups and
-- inserts touch a few pages per institution instead of a random page per key (with 50 million
-- keys, random keys made each lookup a cache miss). The aggregator computes the same value in
-- Python (services/storage/keys.py); receipts and the tests' checks call this function.
CREATE FUNCTION event_key(stream text, org_code text, event_id text) RETURNS uuid
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (left(md5(stream || '/' || org_code), 12) || left(md5(stream || '/' || org_code || '/' || event_id), 20))::uuid;

-- The key store, one partition per month an event counts in (the first copy's month). A
-- month's partition is dropped as a whole when the month is archived, never DELETE-scanned.
-- What a receipt answers is stored with the key: the month, when the collector received the
-- first copy, and when the aggregator applied it (NULL for keys from before receipts).
ALTER TABLE event_keys RENAME TO event_keys_unbounded;
CREATE TABLE event_keys (
    key         uuid        NOT NULL,
    month       date        NOT NULL,
    received_at timestamptz NOT NULL,
    applied_at  timestamptz DEFAULT now()
) PARTITION BY RANGE (month);

-- The partition of month `m`, created (with its months row) if missing; its state. Called by
-- the aggregator in a short transaction of its own before it applies the month's first event,
-- never inside a batch: ATTACH takes only SHARE UPDATE EXCLUSIVE on event_keys, so batches
-- of other months go on meanwhile. An archived month gets no partition again.
CREATE FUNCTION ensure_month(m date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    part  text := format('event_keys_%s', to_char(m, 'YYYY_MM'));
    found text;
BEGIN
    IF extract(day FROM m) <> 1 THEN
        RAISE EXCEPTION 'a month is named by its first day, not %', m;
    END IF;
    -- Serialises two aggregators creating the same partition.
    PERFORM pg_advisory_xact_lock(7310010, extract(year FROM m)::int * 12 + extract(month FROM m)::int);
    INSERT INTO months (month) VALUES (m) ON CONFLICT DO NOTHING;
    SELECT state INTO found FROM months WHERE month = m;
    IF found <> 'archived' AND to_regclass(part) IS NULL THEN
        EXECUTE format('CREATE TABLE %I (LIKE event_keys INCLUDING DEFAULTS)', part);
        EXECUTE format('ALTER TABLE %I ADD PRIMARY KEY (key)', part);
        EXECUTE format('ALTER TABLE %I ADD CHECK (month >= %L AND month < %L)', part, m, m + interval '1 month');
        EXECUTE format('ALTER TABLE event_keys ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       part, m, (m + interval '1 month')::date);
    END IF;
    RETURN found;
END $$;

-- Dead letters the aggregator sent, by the event's key, for receipts (the last reason wins).
CREATE TABLE dead_lettered_events (
    key              uuid        PRIMARY KEY,
    stream           text        NOT NULL,
    org_code         text        NOT NULL,
    event_id         text        NOT NULL,
    reason           text        NOT NULL,
    detail           text        NOT NULL,
    dead_lettered_at timestamptz NOT NULL DEFAULT now()
);

-- The keys counted so far move to their month's partition: every stored event is in exactly
-- one raw table, which says its month (platform zone, as the rollups) and when it was received.
-- A key whose raw row is in no table of contract v1 (a stream added since) goes to the
-- current month: still found by every lookup, archived with that month.
DO $$
DECLARE
    zone text := coalesce((SELECT time_zone FROM rollup_settings), 'Asia/Shanghai');
    m date;
BEGIN
    CREATE TEMP TABLE moved ON COMMIT DROP AS
        SELECT event_key('upload', org_code, event_id) AS key,
               date_trunc('month', uploaded_at AT TIME ZONE zone)::date AS month, received_at
        FROM upload_events
        UNION ALL
        SELECT event_key('kiosk', org_code, event_id),
               date_trunc('month', occurred_at AT TIME ZONE zone)::date, received_at
        FROM kiosk_transactions;
    INSERT INTO moved
        SELECT event_key(u.event_type, u.org_code, u.event_id), date_trunc('month', now() AT TIME ZONE zone)::date, now()
        FROM event_keys_unbounded u
        WHERE u.event_type NOT IN ('upload', 'kiosk');
    FOR m IN SELECT DISTINCT month FROM moved LOOP
        PERFORM ensure_month(m);
    END LOOP;
    INSERT INTO event_keys (key, month, received_at, applied_at) SELECT key, month, received_at, NULL FROM moved;
END $$;
DROP TABLE event_keys_unbounded;

-- The raw tables' (org_code, moment) indexes: no query reads by them (reports read the rollups,
-- rebuild reads whole tables, the data-quality check by time), and keeping them up cost ~1.3 µs
-- of PostgreSQL CPU per event of the aggregator's ~13 (bench/README.md, "Aggregator ... issue 12").
DROP INDEX IF EXISTS upload_events_org_idx;
DROP INDEX IF EXISTS kiosk_transactions_org_idx;
