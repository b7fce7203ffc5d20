"""Storage contract suites, one per service, run on every adapter."""
