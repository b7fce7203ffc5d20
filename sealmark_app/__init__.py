"""The application on top of the four services: the command line, the composition root that
builds every adapter and service, the benchmark suite and the demo seeding. Nothing in
``sealmark`` (the core) or in a service imports this package."""
