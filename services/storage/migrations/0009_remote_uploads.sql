-- Contract revision 2: uploads to the remote-medicine platforms (POST /v1/remote-uploads),
-- the stream `remote_upload` (services/streams/remote_uploads/).

-- One row per new upload. `counts` is the event's object as it arrived (keys of the platform,
-- integers 0..10,000,000; the contract model checked them before the row was written).
-- No (org_code, uploaded_at) index: nothing reads this table by institution (the report reads
-- the rollup, rebuild the whole table), and keeping one up costs the aggregator per event.
CREATE TABLE remote_upload_events (
    uploaded_at     timestamptz NOT NULL,
    org_code        text        NOT NULL,
    event_id        text        NOT NULL,
    platform        text        NOT NULL CHECK (platform IN ('consultation', 'ecg', 'lab', 'imaging')),
    counts          jsonb       NOT NULL CHECK (jsonb_typeof(counts) = 'object'),
    received_at     timestamptz NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL
);
SELECT create_hypertable('remote_upload_events', 'uploaded_at', chunk_time_interval => interval '7 days');

-- Per institution, platform and day of uploaded_at (platform time zone): uploads and the sum
-- of each count key. By day because "connected that day" is asked of the reference data when
-- the report is read; the month's figures are the sums of its days.
CREATE TABLE remote_upload_daily (
    org_code      text   NOT NULL,
    platform      text   NOT NULL,
    day           date   NOT NULL,
    uploads       bigint NOT NULL,
    consultations bigint NOT NULL,
    cases         bigint NOT NULL,
    reports       bigint NOT NULL,
    specimens     bigint NOT NULL,
    images        bigint NOT NULL,
    PRIMARY KEY (org_code, platform, day)
);
-- The report reads a month (and the consultations up to it) of every institution.
CREATE INDEX remote_upload_daily_day_idx ON remote_upload_daily (day);

GRANT SELECT ON remote_upload_events, remote_upload_daily TO grafana_reader;
