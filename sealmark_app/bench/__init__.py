"""Benchmarks: registered measurements printed as JSON lines by ``sealmark bench``.

Every bar in PRODUCT.md §5 is a ratio against a baseline measured in the same run on the same
machine, because absolute numbers drift from run to run.
"""
