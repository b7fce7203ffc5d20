-- What every packing write does first, in one call instead of a statement per step: lock its
-- units, then the chain of units above the one it packs into, again until that chain is
-- stable. A pack of 24 items into a new case made three round trips for this; now one.

-- Transaction advisory locks on unit keys, taken in one global order by every writer (so two
-- writers never wait on each other in a cycle). Held until commit or rollback.
CREATE FUNCTION aggregation_lock(p_keys text[]) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(h)
    FROM (SELECT DISTINCT hashtextextended(k, 0) AS h FROM unnest(p_keys) k ORDER BY 1) s;
END $$;

-- The units above p_key, nearest first (empty when it is not packed).
CREATE FUNCTION aggregation_chain(p_key text) RETURNS text[] LANGUAGE sql STABLE AS $$
    WITH RECURSIVE up(key, depth) AS (
        SELECT parent_key, 1 FROM containment WHERE child_key = p_key
        UNION ALL
        SELECT c.parent_key, up.depth + 1 FROM containment c JOIN up ON c.child_key = up.key
        WHERE up.depth < 16
    )
    SELECT coalesce(array_agg(key ORDER BY depth), '{}') FROM up
$$;

-- Lock p_head and p_others, then the chain above p_head. Once p_head is locked no one else can
-- move it, but a concurrent writer may still move a unit above it: the chain is locked and read
-- again until it is stable (most heads have none, or a stable one). Each step is a statement
-- of its own, so each reads what committed before its lock was granted. Returns the chain,
-- nearest first, or NULL when it kept changing.
CREATE FUNCTION aggregation_lock_chain(p_head text, p_others text[]) RETURNS text[]
LANGUAGE plpgsql AS $$
DECLARE
    chain text[];
    again text[];
BEGIN
    PERFORM aggregation_lock(p_head || p_others);
    chain := aggregation_chain(p_head);
    FOR attempt IN 1..8 LOOP
        IF cardinality(chain) = 0 THEN
            RETURN chain;
        END IF;
        PERFORM aggregation_lock(chain);
        again := aggregation_chain(p_head);
        IF again = chain THEN
            RETURN chain;
        END IF;
        chain := again;
    END LOOP;
    RETURN NULL;
END $$;
