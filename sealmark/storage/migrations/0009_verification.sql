-- Verification: every scan, hidden-PIN first uses, alerts and per-tenant rules.

-- Every verification, appended in batches by the verifier (ScanLog). The source of truth for a
-- serial's scan history: Redis holds a copy for speed and is rebuilt from here.
-- Locations are coarse (two decimals, about 1 km); session and device ids are kept as given
-- by the client (random ids, not personal data) so sessions can be counted after a restart.
CREATE TABLE scans (
    verification_id text PRIMARY KEY,
    tenant_id       text,                  -- NULL: not a code of any tenant
    code_key        text,                  -- NULL: unparseable payload
    verdict         text NOT NULL,
    reasons         text[] NOT NULL,
    risk_score      real NOT NULL,
    session_key     text NOT NULL,
    region          text NOT NULL,
    latitude        real,
    longitude       real,
    active          boolean NOT NULL,      -- a genuine, active code: counts as a verification
    verified_at     timestamptz NOT NULL
);
CREATE INDEX scans_code ON scans (code_key, verified_at) WHERE code_key IS NOT NULL;
CREATE INDEX scans_tenant_time ON scans (tenant_id, verified_at);

-- The first correct entry of a code's hidden PIN. Written at once (not batched): any later
-- entry is the decisive clone signal and must survive any restart.
CREATE TABLE pin_uses (
    code_key        text PRIMARY KEY,
    tenant_id       text NOT NULL,
    verification_id text NOT NULL,
    session_key     text NOT NULL,
    region          text NOT NULL,
    used_at         timestamptz NOT NULL
);

-- Alerts raised by verification (clone, counterfeit, diversion, serial guessing ...).
CREATE TABLE alerts (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       text,                  -- NULL: no tenant known (guessing on foreign codes)
    kind            text NOT NULL,
    code_key        text,
    verification_id text,
    details         jsonb NOT NULL DEFAULT '{}'::jsonb,
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'acknowledged', 'resolved')),
    raised_at       timestamptz NOT NULL,
    changed_at      timestamptz,
    changed_by      text,
    note            text
);
CREATE INDEX alerts_tenant ON alerts (tenant_id, id);

-- Per-tenant verification rules; a tenant without a row uses the defaults (verifier.domain.Rules).
CREATE TABLE verify_rules (
    tenant_id       text PRIMARY KEY REFERENCES tenants (id),
    max_sessions    integer NOT NULL CHECK (max_sessions BETWEEN 1 AND 10000),
    travel_kmh      real NOT NULL CHECK (travel_kmh > 0),
    travel_min_km   real NOT NULL CHECK (travel_min_km >= 0),
    guess_limit     integer NOT NULL CHECK (guess_limit BETWEEN 1 AND 100000),
    guess_window_s  integer NOT NULL CHECK (guess_window_s BETWEEN 1 AND 86400),
    rate_per_minute integer NOT NULL CHECK (rate_per_minute BETWEEN 1 AND 1000000),
    changed_at      timestamptz NOT NULL
);
