"""Storage: ports (Protocols) and their adapters (PostgreSQL, Redis, in-memory fakes)."""
