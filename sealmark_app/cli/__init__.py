"""The ``sealmark`` command line."""
