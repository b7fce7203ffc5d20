-- 0018 (issue 20): no triggers and no SQL functions with parameters, so that the schema runs
-- unchanged on a Citus coordinator (deploy/citus/distribute.sql, docs/citus.md). What they did
-- is now done by explicit writes in the same transaction, or by privileges:
--
-- * domain_events_tlog (0010, 0015): PgEvents.append / append_later insert the queue row of a
--   logged kind in the same statement as the event (sealmark/storage/postgres_repos.py).
-- * codes_state_to_containment / ssccs_state_to_containment (0008): every writer of a unit's
--   state or market updates its containment row in the same transaction (issuer lines,
--   aggregator set_state, audit recall_units).
-- * aggregation_lock / aggregation_chain / aggregation_lock_chain (0013): the advisory locks
--   are one plain statement, the chain is walked level by level by the adapter.
-- * domain_events and tlog_entries are append-only by privilege: the services connect as a
--   member of sealmark_service, which may INSERT and SELECT them, never UPDATE, DELETE or
--   TRUNCATE. (The table owner, who applies migrations, can still do anything: as before,
--   when an owner could drop the trigger.)

DROP TRIGGER domain_events_append_only ON domain_events;
DROP TRIGGER domain_events_no_truncate ON domain_events;
DROP TRIGGER domain_events_tlog ON domain_events;
DROP TRIGGER tlog_entries_append_only ON tlog_entries;
DROP TRIGGER codes_state_to_containment ON codes;
DROP TRIGGER ssccs_state_to_containment ON ssccs;

DROP FUNCTION sealmark_reject_change();
DROP FUNCTION sealmark_tlog_enqueue();
DROP FUNCTION containment_copy_code_state();
DROP FUNCTION containment_copy_sscc_state();
DROP FUNCTION aggregation_lock_chain(text, text[]);
DROP FUNCTION aggregation_chain(text);
DROP FUNCTION aggregation_lock(text[]);

-- The role of the running services (roles are per server: created once, by whichever database
-- migrates first; concurrent creators race harmlessly).
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'sealmark_service') THEN
        CREATE ROLE sealmark_service NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;
END $$;

GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO sealmark_service;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO sealmark_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public
    GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO sealmark_service;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO sealmark_service;
REVOKE UPDATE, DELETE, TRUNCATE ON domain_events, tlog_entries FROM sealmark_service;
REVOKE ALL ON schema_migrations FROM sealmark_service;
GRANT SELECT ON schema_migrations TO sealmark_service;
