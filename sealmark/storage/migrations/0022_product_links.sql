-- 0022: the links a brand registers for a product (GS1-Conformant Resolver: the linkset of
-- /01/{gtin}, and the redirect of ?linkType=gs1:…). Per tenant: distributed by tenant_id
-- under Citus, so the distribution column leads the primary key; products and tenants are
-- reference tables, so the foreign keys to them are allowed. A link is told apart by its
-- link type, language, context and target URL (two links differing only in title or media
-- type are the same link, updated). The issuer writes it (SetProductLinks, DeleteProductLink);
-- the verifier reads it by (tenant_id, gtin), a single-shard prefix of the key.
CREATE TABLE product_links (
    tenant_id   text NOT NULL REFERENCES tenants (id),
    gtin        char(14) NOT NULL REFERENCES products (gtin) CHECK (gtin ~ '^[0-9]{14}$'),
    link_type   text NOT NULL CHECK (link_type ~ '^[A-Za-z]{1,64}$'),
    lang        text NOT NULL DEFAULT '' CHECK (length(lang) <= 35),
    context     text NOT NULL DEFAULT '' CHECK (length(context) <= 64),
    href        text NOT NULL CHECK (length(href) BETWEEN 9 AND 1024 AND href LIKE 'https://%'),
    title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    media_type  text NOT NULL DEFAULT '' CHECK (length(media_type) <= 127),
    position    integer NOT NULL,
    changed_at  timestamptz NOT NULL,
    changed_by  text NOT NULL,
    PRIMARY KEY (tenant_id, gtin, link_type, lang, context, href)
);
