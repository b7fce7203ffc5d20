"""Shared pytest configuration. Fixture modules are registered here as plugins."""

from hypothesis import settings

pytest_plugins = ["tests.pg_fixtures"]

# Hypothesis's per-example deadline (200 ms) is a timed assertion: on a shared 2-core machine a
# property test went over it while nothing was wrong. Speed is the bench's business, so no
# property test has a deadline; what each one asserts stays as it is.
settings.register_profile("sealmark", deadline=None, print_blob=True)
settings.load_profile("sealmark")
