"""The Audit service's gRPC face. Every RPC answers UNIMPLEMENTED (generated base class) until
the Audit issue lands; the access policy is final: auditors read, admins also recall/resolve."""

from __future__ import annotations

import grpc

from sealmark.bootstrap import Container
from sealmark.server.app import ServiceBinding
from sealmark.server.policy import policy
from sealmark.tenancy.model import Role
from sealmark.v1 import audit_pb2_grpc

POLICY = policy(
    "Audit",
    {
        frozenset({Role.AUDITOR}): [
            "WatchAlerts",
            "ListAlerts",
            "AcknowledgeAlert",
            "Trace",
            "GetReport",
            "ExportEpcis",
            "GetCheckpoint",
            "GetInclusionProof",
            "GetConsistencyProof",
            "GetLogEntries",
        ],
        frozenset({Role.ADMIN}): ["Recall", "ResolveAlert"],
    },
)


class AuditService(audit_pb2_grpc.AuditServicer):
    def __init__(self, container: Container) -> None:
        self._container = container


def binding(container: Container) -> ServiceBinding:
    def register(server: grpc.Server) -> None:
        # The .pyi marks every RPC abstract; the generated runtime base class answers
        # UNIMPLEMENTED for the ones not built yet, which is the contract we want.
        servicer = AuditService(container)  # type: ignore[abstract]
        audit_pb2_grpc.add_AuditServicer_to_server(servicer, server)

    return ServiceBinding("audit", "sealmark.v1.Audit", register, POLICY)
