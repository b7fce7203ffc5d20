-- 0004: line reports (commission / scrap / return batches), QC lot holds, SSCC ranges.

-- One row per report batch: the stored acknowledgement makes a retried batch a no-op.
CREATE TABLE report_batches (
    tenant_id  text NOT NULL REFERENCES tenants (id),
    batch_id   text NOT NULL,
    kind       text NOT NULL,
    summary    jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, batch_id)
);

CREATE TABLE lot_holds (
    gtin       char(14) NOT NULL REFERENCES products (gtin),
    lot        text NOT NULL,
    tenant_id  text NOT NULL REFERENCES tenants (id),
    held       boolean NOT NULL,
    reason     text NOT NULL DEFAULT '',
    changed_at timestamptz NOT NULL,
    changed_by text NOT NULL,
    PRIMARY KEY (gtin, lot)
);

-- SSCC serial references are handed out in ranges per (prefix, extension digit).
CREATE TABLE sscc_counters (
    company_prefix  text NOT NULL,
    extension_digit smallint NOT NULL CHECK (extension_digit BETWEEN 0 AND 9),
    next_reference  bigint NOT NULL,
    PRIMARY KEY (company_prefix, extension_digit)
);

CREATE TABLE sscc_allocations (
    tenant_id       text NOT NULL REFERENCES tenants (id),
    request_id      text NOT NULL,
    company_prefix  text NOT NULL,
    extension_digit smallint NOT NULL,
    first_reference bigint NOT NULL,
    quantity        integer NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, request_id)
);
CREATE INDEX issue_requests_work_order ON issue_requests (tenant_id, work_order);
