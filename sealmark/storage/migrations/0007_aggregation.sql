-- Aggregation: which unit is in which, now and over time, and logistics on whole hierarchies.
--
-- A unit is a code (key gtin || serial, as codes.code_key) or an SSCC (key 'sscc:' || 18
-- digits). A code key always starts with 14 digits, so the two kinds never clash.

-- SSCCs used as parents: created by their first pack, from a range the tenant was allocated.
CREATE TABLE ssccs (
    sscc        char(18) PRIMARY KEY CHECK (sscc ~ '^[0-9]{18}$'),
    tenant_id   text NOT NULL REFERENCES tenants (id),
    level       text NOT NULL CHECK (level IN ('bundle', 'case', 'pallet')),
    state       text NOT NULL,
    market      text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- The hierarchy now: one row per contained unit (so "one parent at most" is the primary key).
-- Keyed by the child, like codes: with Citus both would be distributed by the unit key.
CREATE TABLE containment (
    child_key   text PRIMARY KEY,
    tenant_id   text NOT NULL,
    parent_key  text NOT NULL CHECK (parent_key <> child_key),
    child_level smallint NOT NULL CHECK (child_level BETWEEN 1 AND 4),
    event_id    text NOT NULL,
    packed_at   timestamptz NOT NULL
);
CREATE INDEX containment_parent ON containment (parent_key, child_key);

-- Every containment change, oldest first per unit: packed, unpacked, replaced (the old label),
-- replacing (the new one), sampled, reworked.
CREATE TABLE containment_history (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL,
    unit_key    text NOT NULL,
    parent_key  text,
    action      text NOT NULL,
    event_id    text NOT NULL,
    event_time  timestamptz NOT NULL,
    attributes  jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX containment_history_unit ON containment_history (unit_key, id);

-- Idempotency of every Aggregator write: the result is kept, a resent event_id returns it.
CREATE TABLE aggregation_events (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    event_id    text NOT NULL CHECK (event_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    kind        text NOT NULL,
    fingerprint text NOT NULL,
    result      jsonb NOT NULL,
    token_id    text NOT NULL,
    recorded_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, event_id)
);

-- Packing rules per parent: a parent GTIN, or 'sscc-bundle' / 'sscc-case' / 'sscc-pallet'.
CREATE TABLE pack_rules (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    scope       text NOT NULL,
    capacity    integer CHECK (capacity BETWEEN 1 AND 100000),
    homogeneous text NOT NULL DEFAULT 'none' CHECK (homogeneous IN ('none', 'gtin', 'lot')),
    PRIMARY KEY (tenant_id, scope)
);

-- The market a unit was last shipped to (inherited by every descendant).
ALTER TABLE codes ADD COLUMN market text;

-- Decommissions, for undo: the state before, who did it and when.
CREATE TABLE decommissions (
    tenant_id      text NOT NULL,
    unit_key       text NOT NULL,
    event_id       text NOT NULL,
    previous_state text NOT NULL,
    state          text NOT NULL,
    token_id       text NOT NULL,
    decided_at     timestamptz NOT NULL,
    undone_at      timestamptz,
    PRIMARY KEY (unit_key, event_id)
);
CREATE INDEX decommissions_open ON decommissions (unit_key, decided_at DESC) WHERE undone_at IS NULL;
