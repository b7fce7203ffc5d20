-- Which draw made each serial (issue 25). Before this migration the minting code was given
-- the alphabet's name where its symbols belonged, and serials were drawn from the letters of
-- the name ("numeric" gave serials of "ceimnru"). Those codes stay valid and verifiable (their
-- signatures are over what was issued); they are marked 1 so that the serial-exposure report
-- can state their real guess probability. The column is added with default 1, which marks
-- every existing row without rewriting the table, then the default becomes 2 for every code
-- minted from now on: no insert path has to name the column.
--   1 = drawn from the letters of the alphabet's name (the defect)
--   2 = drawn uniformly from the alphabet's symbols
ALTER TABLE codes ADD COLUMN serial_scheme smallint NOT NULL DEFAULT 1;
ALTER TABLE codes ALTER COLUMN serial_scheme SET DEFAULT 2;
ALTER TABLE codes ADD CONSTRAINT codes_serial_scheme CHECK (serial_scheme IN (1, 2));
