-- 0023: the pictures of the consumer page (Issue 23): a brand's logo (per tenant, GTIN '', or
-- per product) and a product's image. Stored re-encoded (no metadata) after the Issuer
-- checked them (issuer/domain/media.py); served by the Verifier at /media/{sha256}.{ext}.
-- Per tenant: distributed by tenant_id, which leads the primary key. The page's lookup is by
-- (tenant_id, gtin): one shard. A /media request names only the digest: the non-unique
-- index below answers it (on Citus a read of every shard, no lock; the Verifier caches the
-- answer, which never changes for a digest).

CREATE TABLE product_media (
    tenant_id  text NOT NULL,
    gtin       text NOT NULL CHECK (gtin = '' OR gtin ~ '^[0-9]{14}$'),
    kind       text NOT NULL CHECK (kind IN ('logo', 'image')),
    sha256     char(64) NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    media_type text NOT NULL CHECK (media_type IN ('image/png', 'image/jpeg', 'image/webp')),
    width      integer NOT NULL CHECK (width BETWEEN 1 AND 4096),
    height     integer NOT NULL CHECK (height BETWEEN 1 AND 4096),
    body       bytea NOT NULL CHECK (length(body) BETWEEN 1 AND 2097152),
    alt        text NOT NULL DEFAULT '' CHECK (length(alt) <= 200),
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, gtin, kind),
    CHECK (kind = 'logo' OR gtin <> '')
);
CREATE INDEX product_media_sha256 ON product_media (sha256);
