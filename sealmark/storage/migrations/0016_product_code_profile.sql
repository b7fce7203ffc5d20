-- How a product's codes prove they are ours (issue 24): 'signed' (Ed25519 in AI 8030, checked
-- offline by anyone with the key set) or 'compact' (a 64-bit HMAC in AI 92 for labels too
-- small for a signature, checked online only). Every existing product keeps signing.
ALTER TABLE products ADD COLUMN code_profile text NOT NULL DEFAULT 'signed'
    CONSTRAINT products_code_profile CHECK (code_profile IN ('signed', 'compact'));
