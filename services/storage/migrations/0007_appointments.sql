-- Contract revision 2: the appointments stream (POST /v1/appointments, services/streams/appointments/).
-- Its raw hypertable and its one rollup; event_keys takes the stream's name as it is (0005).

-- platform: the booking platform's code, '' when the booking names none. Not NULL: the raw rows
-- are written by text COPY, where NULL would need a backslash (services/streams/copytext.py),
-- and a platform code is never empty.
CREATE TABLE appointment_events (
    booked_at       timestamptz NOT NULL,
    org_code        text        NOT NULL,
    event_id        text        NOT NULL,
    channel         text        NOT NULL CHECK (channel IN ('online_12320', 'phone', 'in_clinic', 'third_party')),
    platform        text        NOT NULL CHECK (platform = '' OR channel IN ('online_12320', 'third_party')),
    received_at     timestamptz NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL
);
SELECT create_hypertable('appointment_events', 'booked_at', chunk_time_interval => interval '7 days');
CREATE INDEX appointment_events_org_idx ON appointment_events (org_code, booked_at DESC);

-- Per institution, month of booked_at (platform time zone), channel and platform ('' = none):
-- the bulletin's table by hospital and channel, and summed over institutions its table by
-- booking platform.
CREATE TABLE appointment_monthly (
    org_code text   NOT NULL,
    month    date   NOT NULL,
    channel  text   NOT NULL CHECK (channel IN ('online_12320', 'phone', 'in_clinic', 'third_party')),
    platform text   NOT NULL,
    bookings bigint NOT NULL,
    PRIMARY KEY (org_code, month, channel, platform)
);
-- The reports and the cumulative figure read a month (or a range of months) of every institution.
CREATE INDEX appointment_monthly_month_idx ON appointment_monthly (month);

GRANT SELECT ON appointment_events, appointment_monthly TO grafana_reader;
