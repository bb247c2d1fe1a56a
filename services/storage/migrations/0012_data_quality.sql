-- The data-quality counts of upload events (issue 11, contract Revision 2 "Upload events:
-- data-quality counts"): completeness (缺项少项), conformity (不规范) and linkage (关联性差).
-- Optional on the wire with default 0, so every stored event and rollup row starts at 0:
-- events stored before this migration carried none, and a v1 client sends none.
-- A constant default and no CHECK keep this a catalogue change: no scan or rewrite of the
-- hypertable's chunks. The bounds (0 <= n <= record_count) are the contract model's, checked
-- by the collector and again by the aggregator before anything is stored.
ALTER TABLE upload_events
    ADD COLUMN incomplete_records    bigint NOT NULL DEFAULT 0,
    ADD COLUMN nonconforming_records bigint NOT NULL DEFAULT 0,
    ADD COLUMN unlinked_records      bigint NOT NULL DEFAULT 0;

-- Monthly sums per institution and table, beside records (the rates' denominator).
ALTER TABLE upload_monthly_tables
    ADD COLUMN incomplete    bigint NOT NULL DEFAULT 0,
    ADD COLUMN nonconforming bigint NOT NULL DEFAULT 0,
    ADD COLUMN unlinked      bigint NOT NULL DEFAULT 0;

-- Per kiosk and day: transactions, so a kiosk that falls silent at the month's end is seen
-- (the `flatline` check). Filled from the events applied after this migration (and by a
-- rebuild, which replays the raw table through every stream's fold).
CREATE TABLE kiosk_daily (
    org_code     text   NOT NULL,
    kiosk_id     text   NOT NULL,
    day          date   NOT NULL,
    transactions bigint NOT NULL,
    PRIMARY KEY (org_code, kiosk_id, day)
);
GRANT SELECT ON kiosk_daily TO grafana_reader;

-- Expected uploads and timeliness (contract Revision 2 "Expected uploads and timeliness"): one
-- row per filled slot (institution, table, channel, business day with records), holding when
-- its first records arrived, in seconds after the end of the business day in the platform
-- time zone. Reporting rate, on-time rate and the scheduled channel's lag are read from these.
-- Filled from the events applied after this migration (and by a rebuild).
CREATE TABLE upload_slots (
    org_code      text   NOT NULL,
    table_code    text   NOT NULL,
    mode          text   NOT NULL CHECK (mode IN ('realtime', 'scheduled')),
    business_date date   NOT NULL,
    first_lag_s   bigint NOT NULL,
    PRIMARY KEY (org_code, business_date, table_code, mode)
);
GRANT SELECT ON upload_slots TO grafana_reader;
