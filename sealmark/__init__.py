"""Sealmark: the shared core (identifiers, crypto primitives, storage, config, CLI).

Importing this package does nothing but define names: no connection, key load or server start.
"""

__version__ = "0.1.0"
