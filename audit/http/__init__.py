"""The Audit's HTTP face: the brand dashboard for auditors (see docs/dashboard.md).

One module per concern: ``app`` (routes, login, rendering), ``sessions`` (the signed session
cookie and the CSRF secrets) and ``server`` (the shared server loop of
:mod:`sealmark.server.http_server`, :func:`start_dashboard`). The panels themselves are the
use case :mod:`audit.dashboard`, drawn by :mod:`audit.charts`."""

from __future__ import annotations

from audit.http.app import DashboardApp
from audit.http.server import start_dashboard
from audit.http.sessions import SESSION_COOKIE, SessionSeal

__all__ = ["SESSION_COOKIE", "DashboardApp", "SessionSeal", "start_dashboard"]
