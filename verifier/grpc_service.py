"""The Verifier's gRPC face. Public: no token; rate limited per client address."""

from __future__ import annotations

import grpc

from sealmark.errors import InvalidArgument
from sealmark.server.app import ServiceBinding, add_servicer
from sealmark.server.interceptor import PUBLIC
from sealmark.server.keys import key_set_message
from sealmark.server.policy import policy
from sealmark.v1 import common_pb2, verifier_pb2, verifier_pb2_grpc
from verifier.domain import ClientContext, Verdict, Verification
from verifier.images import ImageVerification, ImageVerifier, MarkStatus
from verifier.messages import reason_message
from verifier.usecases import Verifier

POLICY = policy("Verifier", {PUBLIC: ["Verify", "GetPublicKeySet", "VerifyImage"]})
_VERDICTS = {v: verifier_pb2.Verdict.Value(f"VERDICT_{v.name}") for v in Verdict}


def client_address(peer: str) -> str:
    """The caller's address from a gRPC peer string (``ipv4:1.2.3.4:5678``, ``ipv6:[::1]:5``):
    what public calls are rate limited by. Ports are dropped: one host, one client."""
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit("]", 1)[0].lstrip("[")
    return peer or "unknown"


_MARKS = {
    m: verifier_pb2.CovertMarkStatus.Value(f"COVERT_MARK_STATUS_{m.name}") for m in MarkStatus
}


def context_of(
    request: verifier_pb2.VerifyRequest | verifier_pb2.VerifyImageRequest, client: str
) -> ClientContext:
    given = request.context
    return ClientContext(
        session_id=given.session_id,
        device_id=given.device_id,
        latitude=given.latitude if given.HasField("latitude") else None,
        longitude=given.longitude if given.HasField("longitude") else None,
        region=given.region,
        locale=given.locale or "en",
        client=client,  # client_ip is for the HTTP face; a public gRPC caller cannot set it
    )


def response_of(result: Verification, locale: str) -> verifier_pb2.VerifyResponse:
    response = verifier_pb2.VerifyResponse(
        verdict=_VERDICTS[result.verdict],
        risk_score=result.risk_score,
        session_count=result.session_count,
        pin_confirmed=result.pin_confirmed,
        pin_available=result.pin_available,
        degraded=result.degraded,
        serial=result.serial,
        verification_id=result.verification_id,
        first_verified_region=result.first_verified_region,
    )
    for reason in result.reasons:
        response.reasons.add(
            code=reason.code, rule=reason.rule, message=reason_message(reason, locale)
        )
    if result.product is not None:
        p = result.product
        response.product.CopyFrom(
            verifier_pb2.ProductFacts(
                gtin=p.gtin,
                name=p.name,
                lot=p.lot,
                expiry=p.expiry.isoformat() if p.expiry else "",
                production_date=p.production_date.isoformat() if p.production_date else "",
                brand=p.brand,
            )
        )
    if result.first_verified_at is not None:
        response.first_verified_at.FromDatetime(result.first_verified_at)
    response.verified_at.FromDatetime(result.verified_at)
    return response


def image_response_of(result: ImageVerification, locale: str) -> verifier_pb2.VerifyImageResponse:
    covert = result.covert
    return verifier_pb2.VerifyImageResponse(
        verification=response_of(result.verification, locale),
        covert_mark=verifier_pb2.CovertMark(
            status=_MARKS[covert.status],
            score=covert.score,
            noise=covert.noise,
            modules=covert.modules,
            rule=covert.rule,
        ),
        payload=result.payload,
    )


class VerifierService(verifier_pb2_grpc.VerifierServicer):
    def __init__(self, verifier: Verifier, images: ImageVerifier) -> None:
        self._verifier = verifier
        self._images = images

    def Verify(
        self, request: verifier_pb2.VerifyRequest, context: grpc.ServicerContext
    ) -> verifier_pb2.VerifyResponse:
        pin = request.pin if request.HasField("pin") else None
        given = context_of(request, client_address(context.peer()))
        result = self._verifier.verify(request.payload, pin, given)
        return response_of(result, given.locale)

    def VerifyImage(
        self, request: verifier_pb2.VerifyImageRequest, context: grpc.ServicerContext
    ) -> verifier_pb2.VerifyImageResponse:
        pin = request.pin if request.HasField("pin") else None
        given = context_of(request, client_address(context.peer()))
        try:
            result = self._images.verify_image(request.image, pin, given)
        except InvalidArgument as exc:
            # The code's own text (Verify's "payload") came out of the image.
            field = "image" if exc.field == "payload" else exc.field
            raise InvalidArgument(f"VerifyImageRequest.{field}", exc.reason) from exc
        return image_response_of(result, given.locale)

    def GetPublicKeySet(
        self, request: verifier_pb2.GetPublicKeySetRequest, context: grpc.ServicerContext
    ) -> common_pb2.KeySet:
        which = request.WhichOneof("owner")
        if which is None:
            raise InvalidArgument("GetPublicKeySetRequest.owner", "give tenant_id or gtin")
        owner, keys = self._verifier.public_keys(
            request.tenant_id if which == "tenant_id" else None,
            request.gtin if which == "gtin" else None,
        )
        return key_set_message(owner, keys)


def binding(verifier: Verifier, images: ImageVerifier) -> ServiceBinding:
    """The Verifier's servicer on the built use cases (sealmark_app.root.verifier)."""

    def register(server: grpc.Server) -> None:
        service = VerifierService(verifier, images)
        add_servicer(server, verifier_pb2.DESCRIPTOR.services_by_name["Verifier"], service)

    return ServiceBinding("verifier", "sealmark.v1.Verifier", register, POLICY)
