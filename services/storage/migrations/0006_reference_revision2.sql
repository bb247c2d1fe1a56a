-- Contract revision 2, reference data: institution attributes (and the kinds `hotline` and
-- `other`), the remote-medicine platform connections, the booking platforms, the opening
-- balances of cumulative figures and the days without expected uploads. Versioned like the
-- v1 parts: every row belongs to a reference_versions row, and the cur_* views show the
-- version in force.

ALTER TABLE ref_institutions DROP CONSTRAINT ref_institutions_kind_check;
ALTER TABLE ref_institutions
    ADD CONSTRAINT ref_institutions_kind_check CHECK (kind IN ('district', 'hospital', 'hotline', 'other')),
    -- NULL = unknown; an unknown region is the city itself (the contract's default).
    ADD COLUMN level    text CHECK (level IN ('tertiary', 'secondary', 'primary', 'other')),
    ADD COLUMN region   text CHECK (region IN ('city', 'metro', 'aided', 'other')),
    ADD COLUMN city     text,
    ADD COLUMN district text;

CREATE OR REPLACE VIEW cur_institutions AS
    SELECT i.org_code, i.name, i.kind, i.level, i.region, i.city, i.district
    FROM ref_institutions i JOIN reference_current c USING (version);

ALTER TABLE reference_versions
    ADD COLUMN platform_connections integer NOT NULL DEFAULT 0,
    ADD COLUMN booking_platforms    integer NOT NULL DEFAULT 0,
    ADD COLUMN opening_balances     integer NOT NULL DEFAULT 0,
    ADD COLUMN no_upload_days       integer NOT NULL DEFAULT 0;

-- Connected from connected_on up to, not including, disconnected_on (NULL: still connected).
-- A connection may be re-opened as a later row; the loader refuses overlapping rows.
CREATE TABLE ref_platform_connections (
    version         bigint NOT NULL,
    platform        text   NOT NULL CHECK (platform IN ('consultation', 'ecg', 'lab', 'imaging')),
    org_code        text   NOT NULL,
    connected_on    date   NOT NULL,
    disconnected_on date   CHECK (disconnected_on > connected_on),
    PRIMARY KEY (version, platform, org_code, connected_on),
    FOREIGN KEY (version, org_code) REFERENCES ref_institutions (version, org_code)
);

CREATE TABLE ref_booking_platforms (
    version       bigint NOT NULL REFERENCES reference_versions (version),
    platform_code text   NOT NULL,
    name          text   NOT NULL,
    PRIMARY KEY (version, platform_code),
    UNIQUE (version, name)
);

-- value = everything of the metric before the month as_of (stored as its first day).
CREATE TABLE ref_opening_balances (
    version bigint NOT NULL REFERENCES reference_versions (version),
    metric  text   NOT NULL CHECK (metric IN ('appointments', 'remote_consultations')),
    as_of   date   NOT NULL CHECK (extract(day FROM as_of) = 1),
    value   bigint NOT NULL CHECK (value >= 0),
    PRIMARY KEY (version, metric, as_of)
);

CREATE TABLE ref_no_upload_days (
    version bigint NOT NULL REFERENCES reference_versions (version),
    day     date   NOT NULL,
    reason  text   NOT NULL DEFAULT '',
    PRIMARY KEY (version, day)
);

CREATE VIEW cur_platform_connections AS
    SELECT p.platform, p.org_code, p.connected_on, p.disconnected_on
    FROM ref_platform_connections p JOIN reference_current c USING (version);
CREATE VIEW cur_booking_platforms AS
    SELECT b.platform_code, b.name FROM ref_booking_platforms b JOIN reference_current c USING (version);
CREATE VIEW cur_opening_balances AS
    SELECT o.metric, o.as_of, o.value FROM ref_opening_balances o JOIN reference_current c USING (version);
CREATE VIEW cur_no_upload_days AS
    SELECT d.day, d.reason FROM ref_no_upload_days d JOIN reference_current c USING (version);

-- The dashboards' read-only role reads reference data (0003 grants nothing by default).
GRANT SELECT ON
    ref_platform_connections, ref_booking_platforms, ref_opening_balances, ref_no_upload_days,
    cur_platform_connections, cur_booking_platforms, cur_opening_balances, cur_no_upload_days
TO grafana_reader;
