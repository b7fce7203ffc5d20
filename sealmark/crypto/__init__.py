"""Cryptographic primitives: code signatures, keyed hashes, keys encrypted at rest."""
