"""Generated gRPC stubs of the Sealmark v1 API (make proto)."""
