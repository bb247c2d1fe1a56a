-- Contract revision 2, the hotline stream (services/streams/hotline/): one row per call answered
-- or 12345 work order received by a 12320 centre, and its daily rollup. event_keys takes the
-- stream's name (`hotline_contact`) without change (migration 0005).

CREATE TABLE hotline_contacts (
    occurred_at     timestamptz NOT NULL,
    org_code        text        NOT NULL,
    event_id        text        NOT NULL,
    kind            text        NOT NULL,
    category        text        NOT NULL,
    received_at     timestamptz NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    -- The model's rule, kept by the table too: a category belongs to one kind.
    CHECK (
        (kind = 'call' AND category IN ('consultation', 'complaint', 'appointment', 'crisis_intervention',
                                        'satisfaction_survey', 'voice_qa'))
        OR (kind = 'work_order' AND category IN ('city_12345', 'province_12345'))
    )
);
SELECT create_hypertable('hotline_contacts', 'occurred_at', chunk_time_interval => interval '7 days');
-- No (org_code, occurred_at) index: nothing reads this table by institution (the report and the
-- bulletin read hotline_daily, rebuild reads it whole), and an index costs CPU on every event applied.

-- Per centre, day of occurred_at (platform time zone), kind and category: contacts. The report
-- sums a month's days; the bulletin also reads the days on which a centre was silent.
CREATE TABLE hotline_daily (
    org_code text   NOT NULL,
    day      date   NOT NULL,
    kind     text   NOT NULL,
    category text   NOT NULL,
    contacts bigint NOT NULL,
    PRIMARY KEY (org_code, day, kind, category)
);

GRANT SELECT ON hotline_contacts, hotline_daily TO grafana_reader;
