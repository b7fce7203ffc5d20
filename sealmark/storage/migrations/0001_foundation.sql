-- 0001: tenancy, identity, the append-only domain event log, and the codes table.
--
-- Scale-out plan (Citus): per-code tables are keyed by ONE column, code_key = gtin14 || serial,
-- because Citus distributes a table by exactly one column. codes (and later scan state and
-- containment links) become create_distributed_table(..., 'code_key', colocate_with => 'codes'),
-- so "verify this code" and "parent of this code" are single-shard. tenants, tenant_prefixes,
-- products and api_tokens are small and joined everywhere: Citus reference tables.
-- domain_events is read per tenant: distributed by tenant_id.

CREATE TABLE tenants (
    id            text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9-]{1,62}$'),
    name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    resolver_host text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tenant_prefixes (
    prefix    text PRIMARY KEY CHECK (prefix ~ '^[0-9]{4,12}$'),
    tenant_id text NOT NULL REFERENCES tenants (id),
    position  smallint NOT NULL
);
CREATE INDEX tenant_prefixes_tenant ON tenant_prefixes (tenant_id);

CREATE TABLE products (
    gtin            char(14) PRIMARY KEY CHECK (gtin ~ '^[0-9]{14}$'),
    tenant_id       text NOT NULL REFERENCES tenants (id),
    name            text NOT NULL,
    pack_level      text NOT NULL CHECK (pack_level IN ('item', 'bundle', 'case', 'pallet')),
    default_market  text,
    serial_alphabet text NOT NULL,
    serial_length   smallint NOT NULL CHECK (serial_length BETWEEN 1 AND 20),
    pin_length      smallint NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX products_tenant ON products (tenant_id, gtin);

CREATE TABLE api_tokens (
    id          text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    roles       text[] NOT NULL CHECK (cardinality(roles) > 0),
    secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id, created_at);

CREATE TABLE domain_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL,
    kind        text NOT NULL,
    subject     text NOT NULL,
    occurred_at timestamptz NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    payload     jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_id  text
);
CREATE INDEX domain_events_tenant ON domain_events (tenant_id, id);
CREATE INDEX domain_events_subject ON domain_events (subject, id);

CREATE FUNCTION sealmark_reject_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'domain_events is append-only (% rejected)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER domain_events_append_only
    BEFORE UPDATE OR DELETE ON domain_events
    FOR EACH ROW EXECUTE FUNCTION sealmark_reject_change();
CREATE TRIGGER domain_events_no_truncate
    BEFORE TRUNCATE ON domain_events
    FOR EACH STATEMENT EXECUTE FUNCTION sealmark_reject_change();

CREATE TABLE codes (
    code_key        text NOT NULL,
    tenant_id       text NOT NULL,
    gtin            char(14) NOT NULL,
    serial          text NOT NULL CHECK (length(serial) BETWEEN 1 AND 20),
    lot             text CHECK (length(lot) <= 20),
    expiry          date,
    production_date date,
    state           text NOT NULL,
    key_id          text,
    signature       text,
    pin_hash        bytea,
    work_order      text,
    line_id         text,
    request_id      text,
    issued_at       timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (code_key),
    CHECK (code_key = gtin || serial)
) PARTITION BY HASH (code_key);

DO $$
BEGIN
    FOR i IN 0..15 LOOP
        EXECUTE format(
            'CREATE TABLE codes_p%s PARTITION OF codes FOR VALUES WITH (MODULUS 16, REMAINDER %s)',
            lpad(i::text, 2, '0'), i);
    END LOOP;
END $$;
