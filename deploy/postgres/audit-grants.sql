-- Least privilege for rotator's daemon role on PostgreSQL.
--
-- Run as the database owner after `rotator db upgrade` (which the owner role runs, since only
-- it may change the schema). The daemon then connects as `rotator_daemon`:
--   * audit_events: INSERT and SELECT only — it can append to the hash chain, never edit it;
--   * rotation_runs, key_leases, event_outbox and key_holds: the operational state it must update;
--   * alembic_version: read, so it can check the schema is current.
-- Give the role a password or certificate authentication to suit your installation.

DO $$
BEGIN
    CREATE ROLE rotator_daemon LOGIN;
EXCEPTION WHEN duplicate_object THEN
    NULL;  -- already there: re-running this file only re-applies the grants
END
$$;

REVOKE ALL ON ALL TABLES IN SCHEMA public FROM rotator_daemon;
GRANT USAGE ON SCHEMA public TO rotator_daemon;
GRANT SELECT, INSERT ON audit_events TO rotator_daemon;
GRANT SELECT, INSERT, UPDATE ON rotation_runs TO rotator_daemon;
GRANT SELECT, INSERT, UPDATE ON key_leases TO rotator_daemon;
GRANT SELECT, INSERT, UPDATE ON event_outbox TO rotator_daemon;
GRANT USAGE ON SEQUENCE event_outbox_id_seq TO rotator_daemon;
GRANT SELECT, INSERT, UPDATE ON key_holds TO rotator_daemon;
GRANT SELECT ON alembic_version TO rotator_daemon;
