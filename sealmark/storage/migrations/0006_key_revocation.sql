-- A key declared compromised is revoked (offline checkers stop trusting it; codes signed with
-- it are never handed to a line again), with the reason. A rotation may carry an idempotency
-- id: the same id returns the key it created instead of adding another.
ALTER TABLE signing_keys
    ADD COLUMN revoked_at timestamptz,
    ADD COLUMN revoke_reason text CHECK (length(revoke_reason) <= 500),
    ADD COLUMN rotate_request_id text CHECK (rotate_request_id ~ '^[A-Za-z0-9._:-]{1,64}$'),
    ADD COLUMN rotate_revokes boolean NOT NULL DEFAULT false,
    ADD CONSTRAINT signing_keys_revoked_reason CHECK ((revoked_at IS NULL) = (revoke_reason IS NULL));
CREATE UNIQUE INDEX signing_keys_rotate_request
    ON signing_keys (tenant_id, rotate_request_id) WHERE rotate_request_id IS NOT NULL;
