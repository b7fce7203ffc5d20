-- 0020: webhooks. A brand registers endpoints (URL, secret, the event types it wants); a fact
-- it subscribed to is written with its event in webhook_events and one webhook_deliveries row
-- per subscribed endpoint, in the transaction that writes the fact (the outbox: the Verifier's
-- scan batch or alert, Audit's recall). Audit's dispatcher sends the due deliveries, retries
-- with backoff and dead-letters after the configured number of attempts.
-- Per tenant, distributed by tenant_id (every key starts with it); no triggers; rows of one
-- tenant are claimed under a lock on that tenant's rows only (FOR UPDATE SKIP LOCKED with
-- tenant_id = ...).

CREATE TABLE webhook_endpoints (
    tenant_id       text NOT NULL,
    endpoint_id     text NOT NULL CHECK (endpoint_id ~ '^we_[a-z2-7]{16}$'),
    url             text NOT NULL CHECK (length(url) BETWEEN 1 AND 2048),
    events          text[] NOT NULL CHECK (cardinality(events) > 0),
    description     text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    secret          text NOT NULL,          -- the HMAC key: never returned after creation
    previous_secret text,                   -- still signed with until previous_until
    previous_until  timestamptz,
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL,
    secret_set_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, endpoint_id)
);

CREATE TABLE webhook_events (
    tenant_id   text NOT NULL,
    event_id    text NOT NULL,
    type        text NOT NULL,
    payload     jsonb NOT NULL,
    occurred_at timestamptz NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, event_id)
);

CREATE TABLE webhook_deliveries (
    tenant_id       text NOT NULL,
    endpoint_id     text NOT NULL,
    event_id        text NOT NULL,
    state           text NOT NULL DEFAULT 'pending'
                    CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_at         timestamptz NOT NULL,   -- when due (while pending; a claim leases it)
    last_attempt_at timestamptz,
    last_status     integer,                -- HTTP status of the last attempt, NULL: none
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, endpoint_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at, tenant_id)
    WHERE state = 'pending';
CREATE INDEX webhook_deliveries_listing ON webhook_deliveries (tenant_id, state, created_at);
