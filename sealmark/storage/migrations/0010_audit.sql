-- Audit: the alert workflow, recalls and the transparency log.

-- Alert workflow: open → acknowledged → resolved (with a resolution and a note).
ALTER TABLE alerts
    ADD COLUMN resolution text CHECK (resolution IN ('confirmed', 'false_positive', 'duplicate')),
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN resolved_at timestamptz;
CREATE INDEX alerts_code ON alerts (code_key, id) WHERE code_key IS NOT NULL;

-- Trace reads the events that name a code without reading every event of the tenant:
-- logistics writes name their roots in payload->'codes', status batches the serials of one
-- GTIN in payload->'serials'. Partial, so packing (the hot write) does not pay for them.
CREATE INDEX domain_events_logistics_codes ON domain_events USING gin ((payload -> 'codes'))
    WHERE kind LIKE 'logistics.%';
CREATE INDEX domain_events_status_serials ON domain_events USING gin ((payload -> 'serials'))
    WHERE kind LIKE 'codes.%';

-- Recalls: final. A unit is recalled by its first recall only.
CREATE TABLE recalls (
    recall_id     text PRIMARY KEY,
    tenant_id     text NOT NULL REFERENCES tenants (id),
    request_id    text NOT NULL,
    scope         jsonb NOT NULL,
    reason        text NOT NULL,
    effective_at  timestamptz NOT NULL,
    token_id      text NOT NULL,
    fingerprint   text NOT NULL,
    UNIQUE (tenant_id, request_id)
);
CREATE TABLE recalled_units (
    unit_key       text PRIMARY KEY,
    recall_id      text NOT NULL REFERENCES recalls (recall_id),
    is_code        boolean NOT NULL,
    previous_state text NOT NULL,
    market         text
);
CREATE INDEX recalled_units_recall ON recalled_units (recall_id);

-- Transparency log, one per tenant. Writers never touch the tree: an insert into
-- domain_events of a logged kind queues the event (trigger below, same transaction); the
-- integrator consumes the queue with DELETE … RETURNING, so an event whose transaction
-- commits late is simply integrated by a later run: none is skipped, none taken twice.
CREATE TABLE tlog_queue (
    event_id  bigint PRIMARY KEY,
    tenant_id text NOT NULL
);
CREATE INDEX tlog_queue_tenant ON tlog_queue (tenant_id, event_id);

CREATE FUNCTION sealmark_tlog_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO tlog_queue (event_id, tenant_id) VALUES (NEW.id, NEW.tenant_id);
    RETURN NULL;
END $$;
CREATE TRIGGER domain_events_tlog
    AFTER INSERT ON domain_events FOR EACH ROW
    WHEN (NEW.kind IN ('codes.issued', 'codes.commissioned', 'codes.scrapped', 'codes.returned',
                       'logistics.shipped', 'logistics.received', 'logistics.decommissioned',
                       'logistics.decommission_undone', 'aggregation.replaced',
                       'aggregation.sampled', 'audit.recalled', 'keys.rotated', 'keys.revoked'))
    EXECUTE FUNCTION sealmark_tlog_enqueue();

-- The log: entry bytes exactly as hashed into the leaf. Append-only like domain_events.
CREATE TABLE tlog_entries (
    tenant_id     text NOT NULL REFERENCES tenants (id),
    idx           bigint NOT NULL CHECK (idx >= 0),
    kind          text NOT NULL,
    data          bytea NOT NULL,
    leaf_hash     bytea NOT NULL CHECK (length(leaf_hash) = 32),
    source_event  bigint,
    integrated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, idx)
);
CREATE INDEX tlog_entries_leaf ON tlog_entries (tenant_id, leaf_hash);
CREATE TRIGGER tlog_entries_append_only
    BEFORE UPDATE OR DELETE ON tlog_entries
    FOR EACH ROW EXECUTE FUNCTION sealmark_reject_change();

-- Per tenant: the log's signing key (encrypted PKCS#8 like software signing keys) and the
-- latest signed checkpoint. The row is also the integrator's lock.
CREATE TABLE tlog_heads (
    tenant_id       text PRIMARY KEY REFERENCES tenants (id),
    origin          text NOT NULL,
    key_name        text NOT NULL,
    public_key      bytea NOT NULL,
    private_key_pem bytea NOT NULL,
    size            bigint NOT NULL DEFAULT 0,
    root_hash       bytea NOT NULL,
    signed_note     text NOT NULL,
    updated_at      timestamptz NOT NULL
);
