"""Aggregator service: the packing hierarchy, its exceptions, and logistics events."""
