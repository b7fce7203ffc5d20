-- 0017: client certificates as credentials (mutual TLS). A registration maps one identity of a
-- certificate, its subject DN or one typed subject alternative name, to a tenant and roles,
-- as api_tokens maps a token. Revoked, never deleted: a certificate whose registrations are
-- all revoked is refused even beside a valid token. At most one active registration per
-- identity; a revoked one may be registered again (the new row re-admits it).
-- Small and read on every new certificate: a Citus reference table, like api_tokens.

CREATE TABLE client_certs (
    id          text PRIMARY KEY CHECK (id ~ '^crt_[a-z2-7]{12}$'),
    tenant_id   text NOT NULL REFERENCES tenants (id),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    roles       text[] NOT NULL CHECK (cardinality(roles) > 0),
    kind        text NOT NULL CHECK (kind IN ('subject', 'san')),
    value       text NOT NULL CHECK (length(value) BETWEEN 1 AND 500),
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE UNIQUE INDEX client_certs_active ON client_certs (kind, value) WHERE revoked_at IS NULL;
CREATE INDEX client_certs_lookup ON client_certs (kind, value);
CREATE INDEX client_certs_tenant ON client_certs (tenant_id, created_at);
