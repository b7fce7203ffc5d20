-- Distribute Sealmark's tables on a Citus coordinator (docs/citus.md has the steps).
--
-- Run on the coordinator, in the migrated database, as the owner of the tables, AFTER
-- `sealmark migrate` (and again after any later migration that adds a table):
--     psql "$SEALMARK_DATABASE_URL" -v ON_ERROR_STOP=1 -f deploy/citus/distribute.sql
-- Idempotent: a table already distributed as listed is skipped, so running it twice changes
-- nothing. (Making tenants a reference table turns the tables with foreign keys to it into
-- Citus local tables for a moment; their own lines below then distribute them.)
--
-- ONE LINE PER TABLE. tests/integration/test_citus_schema.py parses these lines and fails
-- when a table of the migrations is missing here, or when a distributed table's primary or
-- unique key lacks its distribution column; tests/unit/test_citus_rules.py checks the SQL.
-- Adding a table is adding its line in the right group:
--   reference:  SELECT create_reference_table('t') WHERE NOT EXISTS (...'t'...);
--   by unit:    SELECT create_distributed_table('t', 'key_column', colocate_with => 'codes') ...
--   by tenant:  SELECT create_distributed_table('t', 'tenant_id', colocate_with => 'domain_events') ...
-- Local (coordinator only, never joined with distributed tables): schema_migrations.

\set ON_ERROR_STOP on

-- Reference tables: small, read everywhere, copied to every node.
SELECT create_reference_table('tenants') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'tenants'::regclass AND repmodel = 't');
SELECT create_reference_table('tenant_prefixes') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'tenant_prefixes'::regclass AND repmodel = 't');
SELECT create_reference_table('products') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'products'::regclass AND repmodel = 't');
SELECT create_reference_table('api_tokens') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'api_tokens'::regclass AND repmodel = 't');
SELECT create_reference_table('client_certs') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'client_certs'::regclass AND repmodel = 't');
SELECT create_reference_table('signing_keys') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'signing_keys'::regclass AND repmodel = 't');
SELECT create_reference_table('serial_counts') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'serial_counts'::regclass AND repmodel = 't');
SELECT create_reference_table('lot_holds') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'lot_holds'::regclass AND repmodel = 't');
SELECT create_reference_table('sscc_counters') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'sscc_counters'::regclass AND repmodel = 't');
SELECT create_reference_table('ssccs') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'ssccs'::regclass AND repmodel = 't');
SELECT create_reference_table('pack_rules') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'pack_rules'::regclass AND repmodel = 't');
SELECT create_reference_table('verify_rules') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'verify_rules'::regclass AND repmodel = 't');
SELECT create_reference_table('recalls') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'recalls'::regclass AND repmodel = 't');

-- Per unit, co-located with codes: "verify this code" and "parent of this code" are one shard.
SELECT create_distributed_table('codes', 'code_key', colocate_with => 'none') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'codes'::regclass AND partmethod = 'h');
SELECT create_distributed_table('containment', 'child_key', colocate_with => 'codes') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'containment'::regclass AND partmethod = 'h');
SELECT create_distributed_table('containment_history', 'unit_key', colocate_with => 'codes') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'containment_history'::regclass AND partmethod = 'h');
SELECT create_distributed_table('scans', 'code_key', colocate_with => 'codes') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'scans'::regclass AND partmethod = 'h');
SELECT create_distributed_table('pin_uses', 'code_key', colocate_with => 'codes') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'pin_uses'::regclass AND partmethod = 'h');
SELECT create_distributed_table('decommissions', 'unit_key', colocate_with => 'codes') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'decommissions'::regclass AND partmethod = 'h');
SELECT create_distributed_table('recalled_units', 'unit_key', colocate_with => 'codes') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'recalled_units'::regclass AND partmethod = 'h');

-- Per tenant, co-located with domain_events.
SELECT create_distributed_table('domain_events', 'tenant_id', colocate_with => 'none') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'domain_events'::regclass AND partmethod = 'h');
SELECT create_distributed_table('tlog_queue', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'tlog_queue'::regclass AND partmethod = 'h');
SELECT create_distributed_table('tlog_entries', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'tlog_entries'::regclass AND partmethod = 'h');
SELECT create_distributed_table('tlog_heads', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'tlog_heads'::regclass AND partmethod = 'h');
SELECT create_distributed_table('issue_requests', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'issue_requests'::regclass AND partmethod = 'h');
SELECT create_distributed_table('report_batches', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'report_batches'::regclass AND partmethod = 'h');
SELECT create_distributed_table('sscc_allocations', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'sscc_allocations'::regclass AND partmethod = 'h');
SELECT create_distributed_table('aggregation_events', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'aggregation_events'::regclass AND partmethod = 'h');
SELECT create_distributed_table('alerts', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'alerts'::regclass AND partmethod = 'h');
SELECT create_distributed_table('webhook_endpoints', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'webhook_endpoints'::regclass AND partmethod = 'h');
SELECT create_distributed_table('webhook_events', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'webhook_events'::regclass AND partmethod = 'h');
SELECT create_distributed_table('webhook_deliveries', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'webhook_deliveries'::regclass AND partmethod = 'h');
SELECT create_distributed_table('product_links', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'product_links'::regclass AND partmethod = 'h');
SELECT create_distributed_table('product_media', 'tenant_id', colocate_with => 'domain_events') WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition WHERE logicalrelid = 'product_media'::regclass AND partmethod = 'h');

-- Distributing a table that Citus first made a local table (above) creates it anew with the
-- default privileges: the append-only logs lose their REVOKE of migration 0018. Again, here.
REVOKE UPDATE, DELETE, TRUNCATE ON domain_events, tlog_entries FROM sealmark_service;
