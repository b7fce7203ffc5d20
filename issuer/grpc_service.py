"""The Issuer's gRPC face. Thin: validate, call one use case, map the result.

Built so far: product reads (GetProduct, ListProducts). The other RPCs of the contract are
inherited from the generated base class and answer UNIMPLEMENTED until the Issuer issue lands.
"""

from __future__ import annotations

import grpc

from sealmark.bootstrap import Container
from sealmark.errors import InvalidArgument
from sealmark.server.app import ServiceBinding
from sealmark.server.interceptor import current_principal
from sealmark.server.policy import READ, policy
from sealmark.tenancy import usecases
from sealmark.tenancy.model import PackLevel, Product, Role
from sealmark.v1 import common_pb2, issuer_pb2, issuer_pb2_grpc

_PACK_LEVELS = {
    PackLevel.ITEM: common_pb2.PACK_LEVEL_ITEM,
    PackLevel.BUNDLE: common_pb2.PACK_LEVEL_BUNDLE,
    PackLevel.CASE: common_pb2.PACK_LEVEL_CASE,
    PackLevel.PALLET: common_pb2.PACK_LEVEL_PALLET,
}
LINE = frozenset({Role.LINE})
ADMIN = frozenset({Role.ADMIN})
POLICY = policy(
    "Issuer",
    {
        READ: ["GetProduct", "ListProducts", "GetPool", "Reconcile", "GetKeySet"],
        LINE: [
            "IssueCodes",
            "RequestPool",
            "ReturnCodes",
            "ReportCommissioned",
            "ReportScrapped",
            "HoldLot",
            "ReleaseLot",
            "AllocateSsccs",
        ],
        ADMIN: ["RotateKey"],
    },
)


def product_message(product: Product) -> common_pb2.Product:
    return common_pb2.Product(
        gtin=product.gtin,
        name=product.name,
        pack_level=_PACK_LEVELS[product.pack_level],
        default_market=product.default_market or "",
        serial_alphabet=product.serial_alphabet,
        serial_length=product.serial_length,
        pin_length=product.pin_length,
    )


class IssuerService(issuer_pb2_grpc.IssuerServicer):
    def __init__(self, container: Container) -> None:
        self._uow = container.uow

    def GetProduct(
        self, request: issuer_pb2.GetProductRequest, context: grpc.ServicerContext
    ) -> common_pb2.Product:
        if not request.gtin:
            raise InvalidArgument("GetProductRequest.gtin", "required")
        product = usecases.product_for(
            self._uow, current_principal(), request.gtin, field="GetProductRequest.gtin"
        )
        return product_message(product)

    def ListProducts(
        self, request: issuer_pb2.ListProductsRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.ListProductsResponse:
        if request.page.page_size > 1000:
            raise InvalidArgument(
                "ListProductsRequest.page.page_size", f"{request.page.page_size}, want 0..1000"
            )
        if request.page.page_token:
            raise InvalidArgument(
                "ListProductsRequest.page.page_token",
                "unknown page token (all products fit one page)",
            )
        products = usecases.products_of(self._uow, current_principal())
        return issuer_pb2.ListProductsResponse(products=[product_message(p) for p in products])


def binding(container: Container) -> ServiceBinding:
    def register(server: grpc.Server) -> None:
        # The .pyi marks every RPC abstract; the generated runtime base class answers
        # UNIMPLEMENTED for the ones not built yet, which is the contract we want.
        servicer = IssuerService(container)  # type: ignore[abstract]
        issuer_pb2_grpc.add_IssuerServicer_to_server(servicer, server)

    return ServiceBinding("issuer", "sealmark.v1.Issuer", register, POLICY)
