-- Reference data is versioned: every load that changes something becomes a new version, and
-- `reference_current` points at the one in force, so a load switches atomically.
CREATE TABLE reference_versions (
    version     bigserial PRIMARY KEY,
    checksum    text        NOT NULL,
    source      text        NOT NULL,
    loaded_at   timestamptz NOT NULL DEFAULT now(),
    institutions integer    NOT NULL,
    tables      integer     NOT NULL,
    declarations integer    NOT NULL,
    kiosks      integer     NOT NULL
);

CREATE TABLE reference_current (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    version   bigint  NOT NULL REFERENCES reference_versions (version)
);

CREATE TABLE ref_institutions (
    version  bigint NOT NULL REFERENCES reference_versions (version),
    org_code text   NOT NULL,
    name     text   NOT NULL,
    kind     text   NOT NULL CHECK (kind IN ('district', 'hospital')),
    PRIMARY KEY (version, org_code)
);

CREATE TABLE ref_tables (
    version      bigint NOT NULL REFERENCES reference_versions (version),
    table_code   text   NOT NULL,
    name         text   NOT NULL,
    category     text   NOT NULL CHECK (category IN ('outpatient_visit', 'discharge', 'ehr_basic',
                                                     'ehr_hypertension', 'ehr_diabetes', 'other')),
    required_for text   NOT NULL CHECK (required_for IN ('district', 'hospital', 'both', 'none')),
    PRIMARY KEY (version, table_code)
);

CREATE TABLE ref_declarations (
    version    bigint NOT NULL,
    org_code   text   NOT NULL,
    table_code text   NOT NULL,
    PRIMARY KEY (version, org_code, table_code),
    FOREIGN KEY (version, org_code) REFERENCES ref_institutions (version, org_code),
    FOREIGN KEY (version, table_code) REFERENCES ref_tables (version, table_code)
);

CREATE TABLE ref_kiosks (
    version  bigint NOT NULL,
    kiosk_id text   NOT NULL,
    org_code text   NOT NULL,
    PRIMARY KEY (version, kiosk_id),
    FOREIGN KEY (version, org_code) REFERENCES ref_institutions (version, org_code)
);

-- Views of the version in force; everything that reads reference data goes through them.
CREATE VIEW cur_institutions AS
    SELECT i.org_code, i.name, i.kind FROM ref_institutions i JOIN reference_current c USING (version);
CREATE VIEW cur_tables AS
    SELECT t.table_code, t.name, t.category, t.required_for FROM ref_tables t JOIN reference_current c USING (version);
CREATE VIEW cur_declarations AS
    SELECT d.org_code, d.table_code FROM ref_declarations d JOIN reference_current c USING (version);
CREATE VIEW cur_kiosks AS
    SELECT k.kiosk_id, k.org_code FROM ref_kiosks k JOIN reference_current c USING (version);

-- Institution tokens: only a SHA-256 of the token is kept (tokens are 256-bit random values,
-- so a slow password hash would add latency without adding protection).
CREATE TABLE api_tokens (
    token_id    text        PRIMARY KEY,
    org_code    text        NOT NULL,
    token_hash  bytea       NOT NULL UNIQUE,
    label       text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Who did what through the admin interfaces; never holds a token or personal data.
CREATE TABLE admin_audit (
    id         bigserial   PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text        NOT NULL,
    action     text        NOT NULL,
    subject    text        NOT NULL,
    details    jsonb       NOT NULL DEFAULT '{}'::jsonb
);
