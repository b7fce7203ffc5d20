-- 0002: signing keys, issuance requests (exactly-once by request id), serial counts.

CREATE TABLE signing_keys (
    tenant_id       text NOT NULL REFERENCES tenants (id),
    key_id          text NOT NULL CHECK (key_id ~ '^[A-Za-z0-9_-]{2}$'),
    algorithm       text NOT NULL DEFAULT 'Ed25519',
    public_key      bytea NOT NULL CHECK (length(public_key) = 32),
    -- PKCS#8 PEM encrypted with the configured passphrase; never stored in clear.
    private_key_pem bytea NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    retired_at      timestamptz,
    PRIMARY KEY (tenant_id, key_id)
);

CREATE TABLE issue_requests (
    tenant_id       text NOT NULL REFERENCES tenants (id),
    request_id      text NOT NULL,
    gtin            char(14) NOT NULL REFERENCES products (gtin),
    lot             text NOT NULL,
    expiry          date NOT NULL,
    production_date date,
    quantity        integer NOT NULL CHECK (quantity BETWEEN 1 AND 500000),
    line_id         text NOT NULL,
    work_order      text NOT NULL,
    key_id          text NOT NULL,
    generated       integer NOT NULL DEFAULT 0 CHECK (generated BETWEEN 0 AND quantity),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id)
);

-- Serials ever issued per GTIN (never decremented: returned/scrapped serials stay used).
CREATE TABLE serial_counts (
    gtin   char(14) PRIMARY KEY REFERENCES products (gtin),
    issued bigint NOT NULL DEFAULT 0
);

ALTER TABLE codes ADD COLUMN seq integer;
CREATE INDEX codes_request ON codes (tenant_id, request_id, seq);
