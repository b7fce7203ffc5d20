"""gRPC server plumbing shared by every service: interceptors, health, metrics, lifecycle."""
