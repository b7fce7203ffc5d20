"""Issuer service: products, code pools and signed codes for packaging lines."""
