"""Shared pytest configuration. Fixture modules are registered here as plugins."""

pytest_plugins = ["tests.pg_fixtures"]
