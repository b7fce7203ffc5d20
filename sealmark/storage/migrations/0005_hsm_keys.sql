-- Signing keys may live in a PKCS#11 token (SEALMARK_KEY_BACKEND=pkcs11): then the row keeps
-- the key's label in the token instead of an encrypted private key. Exactly one of the two.
ALTER TABLE signing_keys
    ADD COLUMN backend text NOT NULL DEFAULT 'software'
        CHECK (backend IN ('software', 'pkcs11')),
    ADD COLUMN token_label text CHECK (length(token_label) BETWEEN 1 AND 128),
    ALTER COLUMN private_key_pem DROP NOT NULL,
    ADD CONSTRAINT signing_keys_one_private_key CHECK (
        (backend = 'software' AND private_key_pem IS NOT NULL AND token_label IS NULL)
        OR (backend = 'pkcs11' AND private_key_pem IS NULL AND token_label IS NOT NULL)
    );
