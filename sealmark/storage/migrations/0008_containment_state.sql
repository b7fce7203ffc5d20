-- Containment carries each contained unit's state and market, so exploding a pallet reads one
-- table (the parent index) and nothing else: 1,440 primary-key probes into the 16 partitions of
-- codes cost more than the whole walk.
--
-- The copies are kept by the database, not by each writer: statement-level triggers on codes
-- and ssccs copy every state or market change of a contained unit into its containment row, in
-- the same transaction. A writer added later (a recall, say) cannot forget them.

ALTER TABLE containment ADD COLUMN state text, ADD COLUMN market text;

UPDATE containment l SET state = c.state, market = c.market
FROM codes c WHERE c.code_key = l.child_key;
UPDATE containment l SET state = s.state, market = s.market
FROM ssccs s WHERE 'sscc:' || s.sscc = l.child_key;

ALTER TABLE containment ALTER COLUMN state SET NOT NULL;

CREATE FUNCTION containment_copy_code_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE containment l SET state = n.state, market = n.market
    FROM changed n
    WHERE l.child_key = n.code_key
      AND (l.state, l.market) IS DISTINCT FROM (n.state, n.market);
    RETURN NULL;
END $$;

CREATE TRIGGER codes_state_to_containment AFTER UPDATE ON codes
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION containment_copy_code_state();

CREATE FUNCTION containment_copy_sscc_state() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE containment l SET state = n.state, market = n.market
    FROM changed n
    WHERE l.child_key = 'sscc:' || n.sscc
      AND (l.state, l.market) IS DISTINCT FROM (n.state, n.market);
    RETURN NULL;
END $$;

CREATE TRIGGER ssccs_state_to_containment AFTER UPDATE ON ssccs
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION containment_copy_sscc_state();
