"""The Issuer's pure domain: serial rules, issuance commands."""
