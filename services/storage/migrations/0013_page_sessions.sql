-- Sessions of the institution pages (`GET /` of the aggregator): an institution's IT staff sign
-- in with their token once, and the browser then holds only a random session id in an HttpOnly
-- cookie. Kept here, not in a signed cookie, so that signing out ends the session on the server
-- (a signed cookie stays valid until it expires, wherever a copy of it went).
--
-- Nothing in this table lets anyone call the API: the session id is stored as its SHA-256 only,
-- and `credential` is the institution token's digest (the one api_tokens already holds) or, for
-- the admin, an HMAC of the session id keyed with the admin token (so rotating the admin token
-- ends every admin session). Not granted to grafana_reader (0003 grants table by table).
CREATE TABLE page_sessions (
    session_hash bytea       PRIMARY KEY,
    org_code     text,                     -- NULL: the admin
    credential   bytea       NOT NULL,
    csrf_token   text        NOT NULL,     -- the form token every POST of the session carries
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    CHECK (expires_at > created_at)
);

-- Sign-in removes the expired sessions; this keeps that a range scan.
CREATE INDEX page_sessions_expires_at ON page_sessions (expires_at);
