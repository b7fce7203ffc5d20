-- 0019 (issue 20): every primary and unique key holds its table's distribution column, as
-- Citus requires (deploy/citus/distribute.sql lists each table's): per-code tables by the unit
-- key, co-located with codes; per-tenant tables by tenant_id, co-located with domain_events.
-- Lookups keep their indexes; an index the new key duplicates is dropped.

ALTER TABLE domain_events DROP CONSTRAINT domain_events_pkey, ADD PRIMARY KEY (tenant_id, id);
DROP INDEX domain_events_tenant;

ALTER TABLE tlog_queue DROP CONSTRAINT tlog_queue_pkey, ADD PRIMARY KEY (tenant_id, event_id);
DROP INDEX tlog_queue_tenant;

ALTER TABLE containment_history DROP CONSTRAINT containment_history_pkey,
    ADD PRIMARY KEY (unit_key, id);
DROP INDEX containment_history_unit;

-- A scan of an unparseable payload has no code: its key is '' (Citus refuses NULL in a
-- distribution column), which no code key can be.
UPDATE scans SET code_key = '' WHERE code_key IS NULL;
ALTER TABLE scans ALTER COLUMN code_key SET DEFAULT '', ALTER COLUMN code_key SET NOT NULL,
    DROP CONSTRAINT scans_pkey, ADD PRIMARY KEY (code_key, verification_id);
DROP INDEX scans_code;
CREATE INDEX scans_code ON scans (code_key, verified_at);

-- An alert raised on no tenant's code (guessing on foreign codes) has tenant '' (no tenant id
-- can be empty: tenants.id's CHECK).
UPDATE alerts SET tenant_id = '' WHERE tenant_id IS NULL;
ALTER TABLE alerts ALTER COLUMN tenant_id SET DEFAULT '', ALTER COLUMN tenant_id SET NOT NULL,
    DROP CONSTRAINT alerts_pkey, ADD PRIMARY KEY (tenant_id, id);
DROP INDEX alerts_tenant;
