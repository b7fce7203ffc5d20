"""The Issuer's gRPC face. Thin: validate, call one use case, map the result.

Every RPC of the Issuer contract is implemented here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC

import grpc

from issuer.domain.commands import IssueCommand
from issuer.domain.media import StoredMedia
from issuer.domain.serials import guess_probability
from issuer.lines import LineReports, ReportBatch
from issuer.links import LinkKey, ProductLinks
from issuer.media import ProductMediaRegistry
from issuer.usecases import Issuer
from sealmark.errors import FailedPrecondition, InvalidArgument
from sealmark.gs1.links import ProductLink
from sealmark.lifecycle import CodeState
from sealmark.server.app import ServiceBinding, add_servicer
from sealmark.server.interceptor import current_principal
from sealmark.server.keys import key_set_message, public_key_message
from sealmark.server.policy import READ, policy
from sealmark.storage.ports import UnitOfWorkFactory
from sealmark.tenancy import usecases
from sealmark.tenancy.model import CodeProfile, PackLevel, Product, Role
from sealmark.v1 import common_pb2, issuer_pb2, issuer_pb2_grpc

_PACK_LEVELS = {
    PackLevel.ITEM: common_pb2.PACK_LEVEL_ITEM,
    PackLevel.BUNDLE: common_pb2.PACK_LEVEL_BUNDLE,
    PackLevel.CASE: common_pb2.PACK_LEVEL_CASE,
    PackLevel.PALLET: common_pb2.PACK_LEVEL_PALLET,
}
_PROFILES = {
    CodeProfile.SIGNED: common_pb2.CODE_PROFILE_SIGNED,
    CodeProfile.COMPACT: common_pb2.CODE_PROFILE_COMPACT,
}
LINE = frozenset({Role.LINE})
ADMIN = frozenset({Role.ADMIN})
POLICY = policy(
    "Issuer",
    {
        READ: [
            "GetProduct",
            "ListProducts",
            "GetPool",
            "Reconcile",
            "GetKeySet",
            "GetSerialReport",
            "GetProductMedia",
            "ListProductLinks",
        ],
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
        ADMIN: ["RotateKey", "SetProductMedia", "SetProductLinks", "DeleteProductLink"],
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
        code_profile=_PROFILES[product.code_profile],
    )


def product_links_message(gtin: str, links: list[ProductLink]) -> issuer_pb2.ProductLinks:
    return issuer_pb2.ProductLinks(
        gtin=gtin,
        links=[
            issuer_pb2.ProductLink(
                link_type=link.curie,
                href=link.href,
                title=link.title,
                lang=link.lang,
                context=link.context,
                media_type=link.media_type,
            )
            for link in links
        ],
    )


class IssuerService(issuer_pb2_grpc.IssuerServicer):
    def __init__(
        self,
        issuer: Issuer,
        lines: LineReports,
        tenancy: UnitOfWorkFactory,
        guess_bound: float,
        media: ProductMediaRegistry | None = None,
        links: ProductLinks | None = None,
    ) -> None:
        self._uow = tenancy
        self._media = media
        self._issuer = issuer
        self._lines = lines
        self._bound = guess_bound
        self._links = links

    def _product(self, product: Product) -> common_pb2.Product:
        message = product_message(product)
        issued = self._issuer.issued_count(product.gtin)
        message.serials_issued = issued
        message.guess_probability = guess_probability(issued, product.serial_space)
        return message

    def IssueCodes(
        self, request: issuer_pb2.IssueCodesRequest, context: grpc.ServicerContext
    ) -> Iterator[issuer_pb2.IssueCodesResponse]:
        command = IssueCommand(
            request_id=request.request_id,
            gtin=request.gtin,
            lot=request.lot,
            expiry=request.expiry,
            quantity=request.quantity,
            line_id=request.line_id,
            work_order=request.work_order,
            production_date=request.production_date,
            resume_from=request.resume_from,
            batch_size=request.batch_size,
        )
        for batch in self._issuer.issue(current_principal(), command):
            row = batch.request
            response = issuer_pb2.IssueCodesResponse(
                request_id=row.request_id,
                gtin=row.gtin,
                lot=row.lot,
                expiry=row.expiry.strftime("%y%m%d"),
                total=batch.total,
            )
            add = response.codes.add  # built in place: less than half the cost of copying in
            for c in batch.codes:
                add(
                    index=c.index,
                    serial=c.serial,
                    element_string=c.element_string,
                    digital_link=c.digital_link,
                    hri=c.hri,
                    signature=c.signature,
                    key_id=c.key_id,
                    pin=c.pin,
                    mac=c.mac,
                )
            yield response

    def GetSerialReport(
        self, request: issuer_pb2.GetSerialReportRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.SerialReport:
        principal = current_principal()
        if request.gtin:
            products = [
                usecases.product_for(
                    self._uow, principal, request.gtin, field="GetSerialReportRequest.gtin"
                )
            ]
        else:
            products = usecases.products_of(self._uow, principal)
        bound = self._bound
        stats = []
        for product in products:
            issued = self._issuer.issued_count(product.gtin)
            space = product.serial_space
            stats.append(
                issuer_pb2.SerialSpaceStats(
                    gtin=product.gtin,
                    serial_alphabet=product.serial_alphabet,
                    serial_length=product.serial_length,
                    serial_space=float(space),
                    serials_issued=issued,
                    guess_probability=guess_probability(issued, space),
                    bound=bound,
                    # Issuance is refused when issued/space would reach the bound.
                    remaining=min(max(0, math.ceil(bound * space) - 1 - issued), 2**64 - 1),
                )
            )
        return issuer_pb2.SerialReport(products=stats)

    def RequestPool(
        self, request: issuer_pb2.RequestPoolRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.Pool:
        row = self._issuer.request_pool(
            current_principal(),
            IssueCommand(
                request_id=request.request_id,
                gtin=request.gtin,
                lot=request.lot,
                expiry=request.expiry,
                quantity=request.quantity,
                line_id=request.line_id,
                work_order=request.work_order,
                production_date=request.production_date,
            ),
        )
        return self._pool_message(row.request_id)

    def GetPool(
        self, request: issuer_pb2.GetPoolRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.Pool:
        if not request.request_id:
            raise InvalidArgument("GetPoolRequest.request_id", "required")
        return self._pool_message(request.request_id)

    def _pool_message(self, request_id: str) -> issuer_pb2.Pool:
        row, counts = self._issuer.pool(current_principal(), request_id)
        outstanding = counts.get("allocated", 0)
        message = issuer_pb2.Pool(
            request_id=row.request_id,
            gtin=row.gtin,
            lot=row.lot,
            expiry=row.expiry.strftime("%y%m%d"),
            production_date=row.production_date.strftime("%y%m%d") if row.production_date else "",
            quantity=row.quantity,
            line_id=row.line_id,
            work_order=row.work_order,
            minted=row.generated,
            commissioned=sum(counts.values())
            - sum(counts.get(s, 0) for s in ("allocated", "scrapped", "returned")),
            scrapped=counts.get("scrapped", 0),
            returned=counts.get("returned", 0),
            outstanding=outstanding,
            status=(
                issuer_pb2.POOL_STATUS_MINTING
                if row.generated < row.quantity
                else issuer_pb2.POOL_STATUS_READY
                if outstanding
                else issuer_pb2.POOL_STATUS_CLOSED
            ),
        )
        if row.created_at is not None:
            message.created_at.FromDatetime(row.created_at)
        return message

    def _reports(
        self, batches: Iterator[issuer_pb2.CodeBatch], target: CodeState
    ) -> Iterator[issuer_pb2.ReportSummary]:
        principal = current_principal()
        for batch in batches:
            summary = self._lines.report(
                principal,
                ReportBatch(
                    batch_id=batch.batch_id,
                    gtin=batch.gtin,
                    serials=list(batch.serials),
                    line_id=batch.line_id,
                    reason=batch.reason,
                    pool_request_id=batch.pool_request_id,
                    all_outstanding=batch.all_outstanding,
                    event_time=(
                        batch.event_time.ToDatetime(tzinfo=UTC)
                        if batch.HasField("event_time")
                        else None
                    ),
                    time_zone_offset=batch.event_time_zone_offset,
                    location=batch.place.location,
                    read_point=batch.place.read_point,
                    market=batch.place.market,
                ),
                target,
            )
            yield issuer_pb2.ReportSummary(
                batch_id=summary.batch_id,
                accepted=summary.accepted,
                already_done=summary.already_done,
                duplicate=summary.duplicate,
                rejected=[
                    issuer_pb2.CodeFailure(serial=s, reason=r, error_code=c)
                    for s, r, c in summary.rejected
                ],
            )

    def ReportCommissioned(
        self, request_iterator: Iterator[issuer_pb2.CodeBatch], context: grpc.ServicerContext
    ) -> Iterator[issuer_pb2.ReportSummary]:
        return self._reports(request_iterator, CodeState.COMMISSIONED)

    def ReportScrapped(
        self, request_iterator: Iterator[issuer_pb2.CodeBatch], context: grpc.ServicerContext
    ) -> Iterator[issuer_pb2.ReportSummary]:
        return self._reports(request_iterator, CodeState.SCRAPPED)

    def ReturnCodes(
        self, request_iterator: Iterator[issuer_pb2.CodeBatch], context: grpc.ServicerContext
    ) -> Iterator[issuer_pb2.ReportSummary]:
        return self._reports(request_iterator, CodeState.RETURNED)

    def Reconcile(
        self, request: issuer_pb2.ReconcileRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.Reconciliation:
        r = self._lines.reconcile(current_principal(), request.work_order)
        return issuer_pb2.Reconciliation(
            work_order=r.work_order,
            allocated=r.allocated,
            commissioned=r.commissioned,
            scrapped=r.scrapped,
            returned=r.returned,
            outstanding=r.outstanding,
            pools=r.pools,
            balanced=r.balanced,
            sampled=r.sampled,
        )

    def _hold(self, request: issuer_pb2.LotHoldRequest, held: bool) -> issuer_pb2.LotHold:
        hold = self._lines.set_hold(
            current_principal(), request.gtin, request.lot, request.reason, held
        )
        message = issuer_pb2.LotHold(
            gtin=hold.gtin,
            lot=hold.lot,
            held=hold.held,
            reason=hold.reason,
            changed_by=hold.changed_by,
            epcis_event_id=hold.epcis_event_id,
        )
        message.changed_at.FromDatetime(hold.changed_at)
        return message

    def HoldLot(
        self, request: issuer_pb2.LotHoldRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.LotHold:
        return self._hold(request, True)

    def ReleaseLot(
        self, request: issuer_pb2.LotHoldRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.LotHold:
        return self._hold(request, False)

    def AllocateSsccs(
        self, request: issuer_pb2.AllocateSsccsRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.AllocateSsccsResponse:
        ssccs = self._lines.allocate_ssccs(
            current_principal(),
            request.request_id,
            request.company_prefix,
            request.extension_digit,
            request.quantity,
        )
        return issuer_pb2.AllocateSsccsResponse(ssccs=ssccs)

    def GetKeySet(
        self, request: issuer_pb2.GetKeySetRequest, context: grpc.ServicerContext
    ) -> common_pb2.KeySet:
        tenant_id = request.tenant_id or current_principal().tenant_id
        return key_set_message(tenant_id, self._issuer.key_set(tenant_id))

    def RotateKey(
        self, request: issuer_pb2.RotateKeyRequest, context: grpc.ServicerContext
    ) -> common_pb2.PublicKey:
        return public_key_message(
            self._issuer.rotate_key(
                current_principal().tenant_id,
                request.request_id,
                request.revoke_previous,
                request.reason,
            )
        )

    def GetProduct(
        self, request: issuer_pb2.GetProductRequest, context: grpc.ServicerContext
    ) -> common_pb2.Product:
        if not request.gtin:
            raise InvalidArgument("GetProductRequest.gtin", "required")
        product = usecases.product_for(
            self._uow, current_principal(), request.gtin, field="GetProductRequest.gtin"
        )
        return self._product(product)

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
        return issuer_pb2.ListProductsResponse(products=[self._product(p) for p in products])

    def SetProductMedia(
        self, request: issuer_pb2.SetProductMediaRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.ProductMedia:
        media = self._media_registry()
        principal = current_principal()
        if request.remove:
            if request.content:
                raise InvalidArgument(
                    "SetProductMediaRequest.content", "leave it empty with remove"
                )
            removed = media.remove_media(principal, request.gtin, request.kind)
            return issuer_pb2.ProductMedia(gtin=request.gtin, kind=request.kind, removed=removed)
        stored = media.set_media(
            principal, request.gtin, request.kind, request.content, request.alt
        )
        return media_message(stored)

    def GetProductMedia(
        self, request: issuer_pb2.GetProductMediaRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.ProductMediaList:
        found = self._media_registry().media(
            current_principal(), request.gtin, field="GetProductMediaRequest.gtin"
        )
        return issuer_pb2.ProductMediaList(media=[media_message(m) for m in found])

    def _links_registry(self) -> ProductLinks:
        if self._links is None:
            raise FailedPrecondition("this Issuer was built without product link storage")
        return self._links

    def _media_registry(self) -> ProductMediaRegistry:
        if self._media is None:
            raise FailedPrecondition("this Issuer was built without product media storage")
        return self._media

    def SetProductLinks(
        self, request: issuer_pb2.SetProductLinksRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.ProductLinks:
        links = [
            ProductLink(
                link_type=link.link_type,
                href=link.href,
                title=link.title,
                lang=link.lang,
                context=link.context,
                media_type=link.media_type,
            )
            for link in request.links
        ]
        gtin, now = self._links_registry().put(
            current_principal(), request.gtin, links, replace=request.replace
        )
        return product_links_message(gtin, now)

    def ListProductLinks(
        self, request: issuer_pb2.ListProductLinksRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.ProductLinks:
        return product_links_message(
            *self._links_registry().listed(current_principal(), request.gtin)
        )

    def DeleteProductLink(
        self, request: issuer_pb2.DeleteProductLinkRequest, context: grpc.ServicerContext
    ) -> issuer_pb2.ProductLinks:
        key = LinkKey(request.link_type, request.href, request.lang, request.context)
        return product_links_message(
            *self._links_registry().delete(current_principal(), request.gtin, key)
        )


def media_message(media: StoredMedia) -> issuer_pb2.ProductMedia:
    return issuer_pb2.ProductMedia(
        gtin=media.gtin,
        kind=media.kind.value,
        sha256=media.sha256,
        media_type=media.media_type,
        width=media.width,
        height=media.height,
        size=len(media.body),
        path=f"/media/{media.sha256}.{media.extension}",
        alt=media.alt,
    )


def binding(
    issuer: Issuer,
    lines: LineReports,
    tenancy: UnitOfWorkFactory,
    guess_bound: float,
    media: ProductMediaRegistry | None = None,
    links: ProductLinks | None = None,
) -> ServiceBinding:
    """The Issuer's servicer over built use cases; registering it starts the minting
    workers, so that the first issuance does not wait for them."""

    def register(server: grpc.Server) -> None:
        issuer.start_workers()
        servicer = IssuerService(issuer, lines, tenancy, guess_bound, media, links)
        add_servicer(server, issuer_pb2.DESCRIPTOR.services_by_name["Issuer"], servicer)

    return ServiceBinding("issuer", "sealmark.v1.Issuer", register, POLICY)
