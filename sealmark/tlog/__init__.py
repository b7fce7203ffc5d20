"""Transparency log core: RFC 9162 Merkle tree math and C2SP signed-note checkpoints."""
