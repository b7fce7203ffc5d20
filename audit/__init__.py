"""Audit service: alerts, trace, recall, reports, EPCIS export and the transparency log."""
