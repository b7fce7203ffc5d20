-- 0003: enforce the premise of codes.code_key.
--
-- code_key = gtin || serial is unambiguous only because every GTIN is exactly 14 digits.
-- char(14) alone does not guarantee that: it space-pads a shorter value and || drops trailing
-- blanks of a char, so ('0952012345678', '8X') and ('09520123456788', 'X') would produce the
-- same key. The CHECK makes the premise a rule of the table. Added while codes is still small:
-- on billions of rows the validating scan would be long.

ALTER TABLE codes ADD CONSTRAINT codes_gtin_14_digits CHECK (gtin ~ '^[0-9]{14}$');
