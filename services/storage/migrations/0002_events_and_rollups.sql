-- Raw events and the rollups the reports read. Exactly-once rests on two keys:
--  * event_keys: each (event_type, org_code, event_id) is inserted once; only events whose
--    key was new reach the raw tables and the rollups (a resubmission counts once);
--  * consumer_offsets: the next offset to apply per topic partition, written in the same
--    transaction as the rows, so a redelivered or stale batch is recognised and skipped.
CREATE EXTENSION IF NOT EXISTS timescaledb;

CREATE TABLE event_keys (
    event_type text NOT NULL CHECK (event_type IN ('upload', 'kiosk')),
    org_code   text NOT NULL,
    event_id   text NOT NULL,
    PRIMARY KEY (event_type, org_code, event_id)
);

CREATE TABLE upload_events (
    uploaded_at    timestamptz NOT NULL,
    org_code       text        NOT NULL,
    event_id       text        NOT NULL,
    table_code     text        NOT NULL,
    mode           text        NOT NULL CHECK (mode IN ('realtime', 'scheduled')),
    business_date  date        NOT NULL,
    record_count   bigint      NOT NULL CHECK (record_count >= 0),
    document_count bigint      NOT NULL CHECK (document_count >= 0),
    received_at    timestamptz NOT NULL,
    kafka_partition integer    NOT NULL,
    kafka_offset   bigint      NOT NULL
);
SELECT create_hypertable('upload_events', 'uploaded_at', chunk_time_interval => interval '7 days');
CREATE INDEX upload_events_org_idx ON upload_events (org_code, uploaded_at DESC);

CREATE TABLE kiosk_transactions (
    occurred_at     timestamptz   NOT NULL,
    org_code        text          NOT NULL,
    event_id        text          NOT NULL,
    kiosk_id        text          NOT NULL,
    kind            text          NOT NULL CHECK (kind IN ('registration', 'payment')),
    amount          numeric(14,2) NOT NULL CHECK (amount >= 0),
    received_at     timestamptz   NOT NULL,
    kafka_partition integer       NOT NULL,
    kafka_offset    bigint        NOT NULL
);
SELECT create_hypertable('kiosk_transactions', 'occurred_at', chunk_time_interval => interval '7 days');
CREATE INDEX kiosk_transactions_org_idx ON kiosk_transactions (org_code, occurred_at DESC);

-- Rollups: additive, keyed by calendar day / month in the platform time zone (the zone is
-- recorded in rollup_settings so a restart with another zone is refused, not mixed).
CREATE TABLE rollup_settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    time_zone text    NOT NULL
);

-- Per institution and day of uploaded_at: feeds upload_days and the missing-upload alert.
CREATE TABLE upload_daily (
    org_code  text   NOT NULL,
    day       date   NOT NULL,
    records   bigint NOT NULL,
    documents bigint NOT NULL,
    events    bigint NOT NULL,
    PRIMARY KEY (org_code, day)
);

-- Per institution, month of uploaded_at and table: records, documents, uploaded tables,
-- category sums and the cumulative health-record counts.
CREATE TABLE upload_monthly_tables (
    org_code   text   NOT NULL,
    month      date   NOT NULL,
    table_code text   NOT NULL,
    records    bigint NOT NULL,
    documents  bigint NOT NULL,
    events     bigint NOT NULL,
    PRIMARY KEY (org_code, month, table_code)
);

-- Per institution, table and business_date: records per channel, for conformance.
CREATE TABLE conformance_daily (
    org_code          text   NOT NULL,
    table_code        text   NOT NULL,
    business_date     date   NOT NULL,
    realtime_records  bigint NOT NULL,
    scheduled_records bigint NOT NULL,
    PRIMARY KEY (org_code, business_date, table_code)
);

-- Per institution, month of occurred_at and kind: kiosk transactions and exact amounts.
CREATE TABLE kiosk_monthly (
    org_code     text          NOT NULL,
    month        date          NOT NULL,
    kind         text          NOT NULL CHECK (kind IN ('registration', 'payment')),
    transactions bigint        NOT NULL,
    amount       numeric(18,2) NOT NULL,
    PRIMARY KEY (org_code, month, kind)
);

-- Liveness per institution and channel (any event, record_count 0 included).
CREATE TABLE channel_last_seen (
    org_code         text        NOT NULL,
    mode             text        NOT NULL,
    last_uploaded_at timestamptz NOT NULL,
    last_received_at timestamptz NOT NULL,
    PRIMARY KEY (org_code, mode)
);

CREATE TABLE consumer_offsets (
    consumer_group text   NOT NULL,
    topic          text   NOT NULL,
    kafka_partition integer NOT NULL,
    next_offset    bigint NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);
