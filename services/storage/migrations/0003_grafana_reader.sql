-- A read-only role for dashboards (Grafana's PostgreSQL/TimescaleDB data source, see
-- deploy/grafana/ and docs/monitoring.md): SELECT on the reference data, the raw events
-- and the rollups, and nothing else. Deliberately not granted: api_tokens (token hashes),
-- admin_audit, event_keys, schema_migrations; and no default privileges, so a table added
-- later is readable only once a migration grants it.
--
-- The role has no password and cannot log in. An operator who connects Grafana gives it
-- one, outside of version control:
--     ALTER ROLE grafana_reader LOGIN PASSWORD '...';
--
-- Roles belong to the whole server, not to this database. Creating one needs CREATEROLE,
-- which the services' own role should not have: deploy/local/postgres.sh (as superuser)
-- creates it before the services start, and so must an operator's database setup. Run by
-- a role that may create roles, this migration creates it itself.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'grafana_reader') THEN
        CREATE ROLE grafana_reader NOLOGIN;
    END IF;
EXCEPTION WHEN insufficient_privilege THEN
    RAISE EXCEPTION 'role grafana_reader is missing and % may not create roles', current_user
        USING HINT = 'as a superuser: CREATE ROLE grafana_reader NOLOGIN; then start again (docs/monitoring.md)';
END
$$;

GRANT USAGE ON SCHEMA public TO grafana_reader;
GRANT SELECT ON
    reference_versions, reference_current,
    ref_institutions, ref_tables, ref_declarations, ref_kiosks,
    cur_institutions, cur_tables, cur_declarations, cur_kiosks,
    upload_events, kiosk_transactions,
    rollup_settings, upload_daily, upload_monthly_tables, conformance_daily, kiosk_monthly,
    channel_last_seen, consumer_offsets
TO grafana_reader;
