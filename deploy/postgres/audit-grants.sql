-- Least privilege for rotator's daemon role on PostgreSQL.
--
-- Run as the database owner (no superuser, no CREATEROLE needed) after `rotator db upgrade`
-- (which the owner role runs, since only it may change the schema):
--   psql -U <owner> -d <database> -v ON_ERROR_STOP=1 -f deploy/postgres/audit-grants.sql
-- The daemon then connects as `rotator_daemon`:
--   * audit_events: INSERT and SELECT only — it can append to the hash chains, never edit them;
--   * audit_heads: where each chain ends; appenders lock their key's row (no advisory lock that
--     any login could take), so only the daemon role may write it;
--   * rotation_runs, key_leases, event_outbox and key_holds: the operational state it must
--     update (a run
--     row is checked against its chained events by `rotator audit verify`);
--   * alembic_version: read, so it can check the schema is current.
-- Roles belong to the whole cluster: if this role may not create `rotator_daemon`, an
-- administrator creates it once (`CREATE ROLE rotator_daemon LOGIN;`) and this file only grants.
-- Give the role a password or certificate authentication to suit your installation.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rotator_daemon') THEN
        CREATE ROLE rotator_daemon LOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object THEN
        NULL;  -- created meanwhile: re-running this file only re-applies the grants
    WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'role rotator_daemon does not exist and % may not create it', current_user
            USING HINT = 'an administrator runs: CREATE ROLE rotator_daemon LOGIN; then run this file again';
END
$$;

REVOKE ALL ON audit_events, audit_heads, rotation_runs, key_leases, event_outbox, alembic_version
    FROM rotator_daemon;
GRANT USAGE ON SCHEMA public TO rotator_daemon;
GRANT SELECT, INSERT ON audit_events TO rotator_daemon;
GRANT USAGE ON SEQUENCE audit_events_seq_seq TO rotator_daemon;
GRANT SELECT, INSERT, UPDATE ON audit_heads TO rotator_daemon;
GRANT SELECT, INSERT, UPDATE ON rotation_runs TO rotator_daemon;
GRANT SELECT, INSERT, UPDATE ON key_leases TO rotator_daemon;
GRANT SELECT, INSERT, UPDATE ON event_outbox TO rotator_daemon;
GRANT USAGE ON SEQUENCE event_outbox_id_seq TO rotator_daemon;
GRANT SELECT, INSERT, UPDATE ON key_holds TO rotator_daemon;
GRANT SELECT ON alembic_version TO rotator_daemon;
