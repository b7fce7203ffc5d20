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
        # The .pyi marks every RPC abstract; the generated runtime base class answers
        # UNIMPLEMENTED for the ones not built yet, which is the contract we want.
        servicer = VerifierService(container)  # type: ignore[abstract]
        verifier_pb2_grpc.add_VerifierServicer_to_server(servicer, server)

    return ServiceBinding("verifier", "sealmark.v1.Verifier", register, POLICY)
