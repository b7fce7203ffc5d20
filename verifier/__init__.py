"""Verifier service: public consumer verification with clone and diversion detection."""
