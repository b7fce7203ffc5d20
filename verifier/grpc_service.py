"""The Verifier's gRPC face. Its RPCs are public (no token). They answer UNIMPLEMENTED (from
the generated base class) until the Verifier issue lands."""

from __future__ import annotations

import grpc

from sealmark.bootstrap import Container
from sealmark.server.app import ServiceBinding
from sealmark.server.interceptor import PUBLIC
from sealmark.server.policy import policy
from sealmark.v1 import verifier_pb2_grpc

POLICY = policy("Verifier", {PUBLIC: ["Verify", "GetPublicKeySet"]})


class VerifierService(verifier_pb2_grpc.VerifierServicer):
    def __init__(self, container: Container) -> None:
        self._container = container


def binding(container: Container) -> ServiceBinding:
    def register(server: grpc.Server) -> None:
        verifier_pb2_grpc.add_VerifierServicer_to_server(VerifierService(container), server)

    return ServiceBinding("verifier", "sealmark.v1.Verifier", register, POLICY)
