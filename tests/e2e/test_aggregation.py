"""The Aggregator end to end through gRPC on a real server: a line packing cases into a pallet
at full speed over PackStream, logistics on the whole hierarchy, queries both ways, the
exceptions a line meets, and 100 concurrent packs of one child."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from sealmark.server.app import create_server
from sealmark.v1 import aggregator_pb2, aggregator_pb2_grpc, common_pb2, issuer_pb2, issuer_pb2_grpc
from sealmark_app.root import binding_for
from sealmark_app.root.aggregator import build_aggregator
from tests.e2e.conftest import _md, make_container
from tests.support.cli import sealmark
from tests.support.tenants import seed_tenant

pytestmark = pytest.mark.e2e
Code = grpc.StatusCode


@pytest.fixture(scope="module")
def plant(pg_dsn: str, redis_url: str) -> Iterator[dict[str, Any]]:
    container = make_container(pg_dsn, redis_url)
    clock, uow = container.clock, container.uow
    brand = seed_tenant(
        uow,
        clock,
        "agg",
        tokens={
            "line": ["line"],
            "logistics": ["logistics"],
            "admin": ["admin"],
            "logistics2": ["logistics"],
        },
    )
    tokens, item, prefix = brand.tokens, brand.gtin, brand.prefix
    other = seed_tenant(uow, clock, "other", tokens={})
    # Servers cache packing rules for a few seconds: set this one before any server reads it.
    build_aggregator(container).set_rule(brand.tenant_id, "sscc-bundle", 2, "none")
    running = create_server(
        [binding_for("issuer", container), binding_for("aggregator", container)],
        container.authenticator,
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{running.port}")
    issuer = issuer_pb2_grpc.IssuerStub(channel)
    issuer.RotateKey(issuer_pb2.RotateKeyRequest(), metadata=_md(tokens["admin"]), timeout=10)
    world = {
        "target": f"127.0.0.1:{running.port}",
        "dsn": pg_dsn,
        "redis_url": redis_url,
        "issuer": issuer,
        "stub": aggregator_pb2_grpc.AggregatorStub(channel),
        "tokens": tokens,
        "item": item,
        "prefix": prefix,
        "other_gtin": other.gtin,
        "tenant": brand.tenant_id,
    }
    yield world
    channel.close()
    running.stop(0)
    container.close()


def _serials(
    plant: dict[str, Any], count: int, *, commission: bool = True, lot: str = "L1"
) -> list[str]:
    responses = plant["issuer"].IssueCodes(
        issuer_pb2.IssueCodesRequest(
            request_id="r-" + os.urandom(6).hex(),
            gtin=plant["item"],
            lot=lot,
            expiry="301231",
            quantity=count,
            line_id="line-1",
            work_order="WO-agg",
        ),
        metadata=_md(plant["tokens"]["line"]),
        timeout=60,
    )
    serials = [c.serial for r in responses for c in r.codes]
    if commission:
        acks = list(
            plant["issuer"].ReportCommissioned(
                iter(
                    [
                        issuer_pb2.CodeBatch(
                            batch_id="c-" + os.urandom(6).hex(), gtin=plant["item"], serials=serials
                        )
                    ]
                ),
                metadata=_md(plant["tokens"]["line"]),
                timeout=30,
            )
        )
        assert acks[0].accepted == count
    return serials


def _ssccs(plant: dict[str, Any], count: int) -> list[str]:
    response = plant["issuer"].AllocateSsccs(
        issuer_pb2.AllocateSsccsRequest(
            request_id="s-" + os.urandom(6).hex(),
            company_prefix=plant["prefix"],
            extension_digit=3,
            quantity=count,
        ),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    return list(response.ssccs)


def _item(plant: dict[str, Any], serial: str) -> common_pb2.CodeRef:
    return common_pb2.CodeRef(sgtin=common_pb2.Sgtin(gtin=plant["item"], serial=serial))


def _box(sscc: str) -> common_pb2.CodeRef:
    return common_pb2.CodeRef(sscc=sscc)


def _eid() -> str:
    return "e-" + os.urandom(6).hex()


def _pack(plant: dict[str, Any], parent: Any, children: list[Any], **extra: Any) -> Any:
    return plant["stub"].Pack(
        aggregator_pb2.PackRequest(
            event_id=extra.pop("event_id", _eid()), parent=parent, children=children, **extra
        ),
        metadata=_md(plant["tokens"]["line"]),
        timeout=30,
    )


def _fails(call: Any, code: grpc.StatusCode, *needles: str) -> str:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value.details()
    for needle in needles:
        assert needle in caught.value.details()
    return str(caught.value.details())


def _ref_key(ref: common_pb2.CodeRef) -> str:
    return ref.sscc if ref.WhichOneof("key") == "sscc" else ref.sgtin.serial


def test_line_packs_a_pallet_over_the_stream_and_ships_it(plant: dict[str, Any]) -> None:
    serials = _serials(plant, 480)
    boxes = _ssccs(plant, 21)
    cases, pallet = boxes[:20], boxes[20]
    events = [
        aggregator_pb2.PackStreamRequest(
            pack=aggregator_pb2.PackRequest(
                event_id=f"case-{i}-{os.urandom(3).hex()}",
                parent=_box(case),
                children=[_item(plant, s) for s in serials[i * 24 : (i + 1) * 24]],
                parent_level=common_pb2.PACK_LEVEL_CASE,
                line_id="line-1",
            )
        )
        for i, case in enumerate(cases)
    ]
    events.append(
        aggregator_pb2.PackStreamRequest(
            pack=aggregator_pb2.PackRequest(
                event_id="pallet-" + os.urandom(3).hex(),
                parent=_box(pallet),
                children=[_box(c) for c in cases],
                parent_level=common_pb2.PACK_LEVEL_PALLET,
            )
        )
    )
    acks = list(
        plant["stub"].PackStream(iter(events), metadata=_md(plant["tokens"]["line"]), timeout=60)
    )
    assert [(a.ok, a.children_affected) for a in acks] == [(True, 24)] * 20 + [(True, 20)]
    assert [a.event_id for a in acks] == [e.pack.event_id for e in events]

    counts = plant["stub"].GetCounts(
        aggregator_pb2.GetCountsRequest(parent=_box(pallet)),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    assert [(c.level, c.count) for c in counts.counts] == [
        (common_pb2.PACK_LEVEL_ITEM, 480),
        (common_pb2.PACK_LEVEL_CASE, 20),
    ]
    assert (counts.total, counts.direct) == (500, 20)

    # Down: every unit under the pallet, paged; up: the pallet above any bottle.
    pages = list(
        plant["stub"].ListChildren(
            aggregator_pb2.ListChildrenRequest(
                parent=_box(pallet), all_levels=True, page=common_pb2.PageRequest(page_size=128)
            ),
            metadata=_md(plant["tokens"]["line"]),
            timeout=10,
        )
    )
    children = [c for p in pages for c in p.children]
    assert [len(p.children) for p in pages] == [128, 128, 128, 116]
    assert [p.next_page_token != "" for p in pages] == [True, True, True, False]
    assert {_ref_key(c.code) for c in children if c.depth == 1} == set(cases)
    assert {_ref_key(c.code) for c in children if c.depth == 2} == set(serials)
    # Breadth first, each parent's children together (pages are cut inside a case's 24).
    runs = [(c.depth, _ref_key(c.parent)) for c in children]
    starts = [run for n, run in enumerate(runs) if n == 0 or runs[n - 1] != run]
    assert [d for d, _ in starts] == [1] + [2] * 20 and len(set(starts)) == len(starts)

    # Each token resumes right after its page, wherever in a case the page ended.
    def listed(token: str) -> list[aggregator_pb2.Child]:
        request = aggregator_pb2.ListChildrenRequest(
            parent=_box(pallet),
            all_levels=True,
            page=common_pb2.PageRequest(page_size=128, page_token=token),
        )
        return [
            c
            for p in plant["stub"].ListChildren(
                request, metadata=_md(plant["tokens"]["line"]), timeout=10
            )
            for c in p.children
        ]

    for n, page in enumerate(pages[:-1]):
        assert listed(page.next_page_token) == children[(n + 1) * 128 :]
    for forged in ("2:" + pallet, "x y z", "1 sscc:1", pages[0].next_page_token + " more"):
        _fails(lambda t=forged: listed(t), grpc.StatusCode.INVALID_ARGUMENT, "page_token")
    ancestors = plant["stub"].GetAncestors(
        aggregator_pb2.GetAncestorsRequest(code=_item(plant, serials[30])),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    assert [_ref_key(a) for a in ancestors.ancestors] == [cases[1], pallet]
    assert _ref_key(ancestors.top) == pallet

    shipped = plant["stub"].Ship(
        aggregator_pb2.ShipRequest(
            event_id=_eid(),
            codes=[_box(pallet)],
            to_party="urn:epc:id:sgln:4012345.00001.0",
            destination_market="DE",
        ),
        metadata=_md(plant["tokens"]["logistics"]),
        timeout=30,
    )
    assert shipped.codes_affected == 501
    after = [
        c
        for p in plant["stub"].ListChildren(
            aggregator_pb2.ListChildrenRequest(parent=_box(pallet), all_levels=True),
            metadata=_md(plant["tokens"]["line"]),
            timeout=10,
        )
        for c in p.children
    ]
    assert {(c.state, c.market) for c in after} == {(common_pb2.CODE_STATE_IN_TRANSIT, "DE")}
    # Shipped units cannot be packed elsewhere or shipped again before they are received.
    _fails(
        lambda: plant["stub"].Ship(
            aggregator_pb2.ShipRequest(
                event_id=_eid(), codes=[_box(cases[0])], to_party="x", destination_market="FR"
            ),
            metadata=_md(plant["tokens"]["logistics"]),
            timeout=10,
        ),
        Code.FAILED_PRECONDITION,
        "in_transit",
    )
    received = plant["stub"].Receive(
        aggregator_pb2.ReceiveRequest(event_id=_eid(), codes=[_box(pallet)], from_party="plant"),
        metadata=_md(plant["tokens"]["logistics"]),
        timeout=30,
    )
    assert received.codes_affected == 501

    # A damaged label on an item of case 2: a fresh code takes its place, the old is scrapped.
    (fresh,) = _serials(plant, 1, commission=False)
    damaged = serials[2 * 24]
    replaced = plant["stub"].Replace(
        aggregator_pb2.ReplaceRequest(
            event_id=_eid(),
            old_code=_item(plant, damaged),
            new_code=_item(plant, fresh),
            reason="torn label",
        ),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    assert replaced.children_affected == 2
    up = plant["stub"].GetAncestors(
        aggregator_pb2.GetAncestorsRequest(code=_item(plant, fresh)),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    assert [_ref_key(a) for a in up.ancestors] == [cases[2], pallet]
    in_case = {
        _ref_key(c.code): c
        for p in plant["stub"].ListChildren(
            aggregator_pb2.ListChildrenRequest(parent=_box(cases[2])),
            metadata=_md(plant["tokens"]["line"]),
            timeout=10,
        )
        for c in p.children
    }
    assert fresh in in_case and damaged not in in_case and len(in_case) == 24
    assert in_case[fresh].state == common_pb2.CODE_STATE_RECEIVED  # the logistics state moved
    assert in_case[fresh].market == "DE"
    _fails(
        lambda: _pack(plant, _box(cases[3]), [_item(plant, damaged)]),
        Code.FAILED_PRECONDITION,
        "scrapped",
    )

    # Case 4 is reworked: 20 of its items stay, 4 go, 4 new ones come in, one event.
    spare = _serials(plant, 4)
    keep = serials[4 * 24 : 4 * 24 + 20]
    reworked = plant["stub"].Rework(
        aggregator_pb2.ReworkRequest(
            event_id=_eid(),
            parent=_box(cases[4]),
            children=[_item(plant, s) for s in keep + spare],
            reason="wrong count",
        ),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    assert reworked.children_affected == 8
    content = {
        _ref_key(c.code)
        for p in plant["stub"].ListChildren(
            aggregator_pb2.ListChildrenRequest(parent=_box(cases[4])),
            metadata=_md(plant["tokens"]["line"]),
            timeout=10,
        )
        for c in p.children
    }
    assert content == set(keep + spare)
    gone = plant["stub"].GetAncestors(
        aggregator_pb2.GetAncestorsRequest(code=_item(plant, serials[4 * 24 + 23])),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    assert list(gone.ancestors) == []

    # QA samples an item of case 6: out of its case, state sampled.
    sampled = plant["stub"].Sample(
        aggregator_pb2.SampleRequest(
            event_id=_eid(), code=_item(plant, serials[6 * 24]), reason="QA"
        ),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    assert sampled.children_affected == 1
    counts6 = plant["stub"].GetCounts(
        aggregator_pb2.GetCountsRequest(parent=_box(cases[6])),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    assert counts6.total == 23

    # The line reworks a case: unpack it entirely (EPCIS DELETE without children).
    emptied = plant["stub"].Unpack(
        aggregator_pb2.UnpackRequest(event_id=_eid(), parent=_box(cases[5])),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    assert emptied.children_affected == 24
    history = plant["stub"].GetContainmentHistory(
        aggregator_pb2.GetContainmentHistoryRequest(code=_item(plant, serials[5 * 24])),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    assert [e.type for e in history.events] == [
        common_pb2.EVENT_TYPE_PACKED,
        common_pb2.EVENT_TYPE_UNPACKED,
    ]
    assert {_ref_key(e.parent_code) for e in history.events} == {cases[5]}


def test_one_hundred_concurrent_packs_of_one_child_have_one_winner(
    plant: dict[str, Any],
) -> None:
    (child,) = _serials(plant, 1)
    parents = _ssccs(plant, 100)
    results: dict[int, Any] = {}
    barrier = threading.Barrier(100)

    def attempt(n: int) -> None:
        barrier.wait()
        try:
            results[n] = _pack(plant, _box(parents[n]), [_item(plant, child)])
        except grpc.RpcError as exc:
            results[n] = exc

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    won = [n for n, r in results.items() if not isinstance(r, grpc.RpcError)]
    assert len(results) == 100 and len(won) == 1
    winner = parents[won[0]]
    for n, r in results.items():
        if n != won[0]:
            assert r.code() == Code.FAILED_PRECONDITION, r.details()
            assert child in r.details() and winner in r.details()
    ancestors = plant["stub"].GetAncestors(
        aggregator_pb2.GetAncestorsRequest(code=_item(plant, child)),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    assert [_ref_key(a) for a in ancestors.ancestors] == [winner]


def test_an_event_id_is_idempotent(plant: dict[str, Any]) -> None:
    serials = _serials(plant, 2)
    (box, other) = _ssccs(plant, 2)
    event_id = _eid()
    first = _pack(plant, _box(box), [_item(plant, s) for s in serials], event_id=event_id)
    again = _pack(plant, _box(box), [_item(plant, s) for s in serials], event_id=event_id)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert again.children_affected == first.children_affected == 2
    _fails(
        lambda: _pack(plant, _box(other), [_item(plant, serials[0])], event_id=event_id),
        Code.ALREADY_EXISTS,
        event_id,
    )


def test_bad_packs_name_the_problem_and_write_nothing(plant: dict[str, Any]) -> None:
    good = _serials(plant, 2)
    (allocated,) = _serials(plant, 1, commission=False)
    box, outer, small = _ssccs(plant, 3)
    never = _item(plant, "NEVERISSUED1")
    children = [_item(plant, s) for s in good]

    _fails(lambda: _pack(plant, _box(box), [*children, never]), Code.NOT_FOUND, "NEVERISSUED1")
    foreign = common_pb2.CodeRef(sgtin=common_pb2.Sgtin(gtin=plant["other_gtin"], serial="A1"))
    _fails(lambda: _pack(plant, _box(box), [foreign]), Code.PERMISSION_DENIED, plant["other_gtin"])
    _fails(
        lambda: _pack(plant, _box(box), [*children, _item(plant, allocated)]),
        Code.FAILED_PRECONDITION,
        allocated,
        "allocated",
    )
    _fails(lambda: _pack(plant, _box(box), [_box(box)]), Code.INVALID_ARGUMENT, "itself")
    _fails(
        lambda: _pack(plant, _box(box), [children[0], children[0]]),
        Code.INVALID_ARGUMENT,
        "PackRequest.children",
        "twice",
    )
    _fails(
        lambda: _pack(plant, common_pb2.CodeRef(sscc="123456789012345678"), children),
        Code.INVALID_ARGUMENT,
        "PackRequest.parent.sscc",
    )
    _fails(
        lambda: _pack(plant, common_pb2.CodeRef(scanned="https://example.com/hello"), children),
        Code.INVALID_ARGUMENT,
        "PackRequest.parent.scanned",
    )
    _fails(lambda: _pack(plant, common_pb2.CodeRef(), children), Code.INVALID_ARGUMENT, "parent")
    # Nothing of the failed events was written: the good children are still free.
    for serial in good:
        ancestors = plant["stub"].GetAncestors(
            aggregator_pb2.GetAncestorsRequest(code=_item(plant, serial)),
            metadata=_md(plant["tokens"]["line"]),
            timeout=10,
        )
        assert list(ancestors.ancestors) == []

    # A cycle: box in outer, then outer into box.
    _pack(plant, _box(box), children, parent_level=common_pb2.PACK_LEVEL_CASE)
    _pack(plant, _box(outer), [_box(box)], parent_level=common_pb2.PACK_LEVEL_PALLET)
    _fails(lambda: _pack(plant, _box(box), [_box(outer)]), Code.FAILED_PRECONDITION, "cycle")

    # A full bundle, by the tenant's rule for SSCC bundles (set before the server started).
    more = _serials(plant, 3)
    _fails(
        lambda: _pack(
            plant,
            _box(small),
            [_item(plant, s) for s in more],
            parent_level=common_pb2.PACK_LEVEL_BUNDLE,
        ),
        Code.FAILED_PRECONDITION,
        "full",
        "capacity of 2",
    )


def test_a_held_lot_cannot_be_packed_or_shipped(plant: dict[str, Any]) -> None:
    lot = "HOLD-" + os.urandom(2).hex()
    serials = _serials(plant, 2, lot=lot)
    (box,) = _ssccs(plant, 1)
    _pack(plant, _box(box), [_item(plant, serials[0])], parent_level=common_pb2.PACK_LEVEL_CASE)
    plant["issuer"].HoldLot(
        issuer_pb2.LotHoldRequest(gtin=plant["item"], lot=lot, reason="QC"),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    _fails(
        lambda: _pack(plant, _box(box), [_item(plant, serials[1])]),
        Code.FAILED_PRECONDITION,
        f"lot {lot}",
        "hold",
    )
    _fails(
        lambda: plant["stub"].Ship(
            aggregator_pb2.ShipRequest(
                event_id=_eid(), codes=[_box(box)], to_party="x", destination_market="FR"
            ),
            metadata=_md(plant["tokens"]["logistics"]),
            timeout=10,
        ),
        Code.FAILED_PRECONDITION,
        f"lot {lot}",
    )


def _logistics(plant: dict[str, Any], rpc: str, role: str = "logistics", **fields: Any) -> Any:
    return getattr(plant["stub"], rpc)(
        getattr(aggregator_pb2, f"{rpc}Request")(event_id=_eid(), **fields),
        metadata=_md(plant["tokens"][role]),
        timeout=30,
    )


def test_decommission_follows_the_hierarchy_and_undo_has_rules(plant: dict[str, Any]) -> None:
    serials = _serials(plant, 3)
    (box,) = _ssccs(plant, 1)
    _pack(
        plant,
        _box(box),
        [_item(plant, s) for s in serials],
        parent_level=common_pb2.PACK_LEVEL_CASE,
    )
    locked = _logistics(
        plant,
        "Decommission",
        codes=[_box(box)],
        reason=aggregator_pb2.DECOMMISSION_REASON_LOCKED,
        note="investigation",
    )
    assert locked.codes_affected == 4
    _fails(
        lambda: _logistics(plant, "UndoDecommission", role="logistics2", codes=[_box(box)]),
        Code.FAILED_PRECONDITION,
        "another party",
    )
    undone = _logistics(plant, "UndoDecommission", codes=[_box(box)])
    assert undone.codes_affected == 4
    _fails(
        lambda: _logistics(plant, "UndoDecommission", codes=[_box(box)]),
        Code.FAILED_PRECONDITION,
        "no decommission",
    )
    destroyed = _logistics(
        plant,
        "Decommission",
        codes=[_item(plant, serials[0])],
        reason=aggregator_pb2.DECOMMISSION_REASON_DESTROYED,
    )
    assert destroyed.codes_affected == 1
    _fails(
        lambda: _logistics(plant, "UndoDecommission", codes=[_item(plant, serials[0])]),
        Code.FAILED_PRECONDITION,
        "final",
    )
    _fails(
        lambda: _logistics(plant, "Decommission", codes=[_box(box)]),
        Code.INVALID_ARGUMENT,
        "DecommissionRequest.reason",
    )


def test_roles_are_enforced(plant: dict[str, Any]) -> None:
    (box,) = _ssccs(plant, 1)
    _fails(
        lambda: plant["stub"].Ship(
            aggregator_pb2.ShipRequest(
                event_id=_eid(), codes=[_box(box)], to_party="x", destination_market="FR"
            ),
            metadata=_md(plant["tokens"]["line"]),
            timeout=10,
        ),
        Code.PERMISSION_DENIED,
    )
    _fails(
        lambda: plant["stub"].Pack(
            aggregator_pb2.PackRequest(event_id=_eid(), parent=_box(box)),
            metadata=_md(plant["tokens"]["logistics"]),
            timeout=10,
        ),
        Code.PERMISSION_DENIED,
    )


def test_bad_replacements_and_samples_are_refused(plant: dict[str, Any]) -> None:
    a, b, c = _serials(plant, 3)
    (box,) = _ssccs(plant, 1)
    _pack(
        plant,
        _box(box),
        [_item(plant, a), _item(plant, b)],
        parent_level=common_pb2.PACK_LEVEL_CASE,
    )

    def replace(old: Any, new: Any) -> Any:
        return plant["stub"].Replace(
            aggregator_pb2.ReplaceRequest(event_id=_eid(), old_code=old, new_code=new),
            metadata=_md(plant["tokens"]["line"]),
            timeout=10,
        )

    _fails(lambda: replace(_item(plant, a), _item(plant, b)), Code.FAILED_PRECONDITION, "free")
    _fails(lambda: replace(_item(plant, a), _box(box)), Code.INVALID_ARGUMENT, "new_code")
    _fails(lambda: replace(_item(plant, a), _item(plant, a)), Code.INVALID_ARGUMENT, "itself")
    _fails(
        lambda: replace(_item(plant, "NOSUCHCODE9"), _item(plant, c)),
        Code.NOT_FOUND,
        "NOSUCHCODE9",
    )
    _fails(
        lambda: plant["stub"].Sample(
            aggregator_pb2.SampleRequest(event_id=_eid(), code=_box(box)),
            metadata=_md(plant["tokens"]["line"]),
            timeout=10,
        ),
        Code.FAILED_PRECONDITION,
        "holds units",
    )
    # Nothing moved: both items are still in the box.
    counts = plant["stub"].GetCounts(
        aggregator_pb2.GetCountsRequest(parent=_box(box)),
        metadata=_md(plant["tokens"]["line"]),
        timeout=10,
    )
    assert (counts.total, counts.direct) == (2, 2)


def test_cli_packs_ships_and_prints_the_tree(plant: dict[str, Any]) -> None:
    serials = _serials(plant, 3)
    case, pallet = _ssccs(plant, 2)

    def cli(*args: str, role: str = "line") -> subprocess.CompletedProcess[str]:
        token = plant["tokens"][role]
        return sealmark(
            "--json",
            *args,
            "--target",
            plant["target"],
            "--token",
            token,
            dsn=plant["dsn"],
            redis_url=plant["redis_url"],
        )

    def run(*args: str, role: str = "line") -> Any:
        done = cli(*args, role=role)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    children = [f"{plant['item']}/{s}" for s in serials]
    packed = run("pack", case, *children, "--level", "case")
    assert (packed["children_affected"], packed["duplicate"]) == (3, False)
    run("pack", pallet, case, "--level", "pallet")
    shipped = run("ship", pallet, "--to", "dc-9", "--market", "FR", role="logistics")
    assert shipped["codes_affected"] == 5
    tree = run("tree", children[0])
    assert tree["ancestors"] == [case, pallet]
    below = run("tree", pallet)["descendants"]
    assert {(d["code"], d["state"], d["market"]) for d in below} == {
        (unit, "in_transit", "FR") for unit in [case, *children]
    }
    # A bad unit is refused by the CLI itself, naming the argument; a server refusal exits 1.
    refused = cli("pack", case, "not a code")
    assert refused.returncode == 2 and "CHILD" in refused.stderr
    denied = cli("unpack", case, children[0], role="logistics")
    assert denied.returncode == 1 and "PERMISSION_DENIED" in denied.stderr


def test_a_packed_code_cannot_be_scrapped_by_a_line_report(plant: dict[str, Any]) -> None:
    inside, free = _serials(plant, 2)
    (box,) = _ssccs(plant, 1)
    _pack(plant, _box(box), [_item(plant, inside)], parent_level=common_pb2.PACK_LEVEL_CASE)
    acks = list(
        plant["issuer"].ReportScrapped(
            iter(
                [
                    issuer_pb2.CodeBatch(
                        batch_id="s-" + os.urandom(6).hex(),
                        gtin=plant["item"],
                        serials=[inside, free],
                        reason="smudged",
                    )
                ]
            ),
            metadata=_md(plant["tokens"]["line"]),
            timeout=30,
        )
    )
    assert acks[0].accepted == 1
    (rejected,) = acks[0].rejected
    assert rejected.serial == inside and rejected.error_code == "FAILED_PRECONDITION"
    assert f"packed in SSCC {box}" in rejected.reason


def test_a_failing_event_in_a_stream_group_changes_nothing_and_the_rest_stand(
    plant: dict[str, Any],
) -> None:
    """Events queued together are written in one transaction (group commit); each must still
    be atomic on its own, acknowledged in order."""
    serials = _serials(plant, 6)
    boxes = _ssccs(plant, 4)

    def pack(event_id: str, box: str, kids: list[str]) -> aggregator_pb2.PackStreamRequest:
        return aggregator_pb2.PackStreamRequest(
            pack=aggregator_pb2.PackRequest(
                event_id=event_id,
                parent=_box(box),
                children=[_item(plant, k) for k in kids],
                parent_level=common_pb2.PACK_LEVEL_CASE,
            )
        )

    first = pack(_eid(), boxes[0], serials[0:2])
    events = [
        first,
        pack(_eid(), boxes[1], [serials[2], serials[0]]),  # serials[0] is in boxes[0]: refused
        pack(_eid(), boxes[2], serials[2:4]),  # serials[2] is free again: the refusal undid it
        first,  # a resend inside the same group
        pack(_eid(), boxes[3], serials[4:6]),
    ]
    acks = list(
        plant["stub"].PackStream(iter(events), metadata=_md(plant["tokens"]["line"]), timeout=30)
    )
    assert [a.event_id for a in acks] == [e.pack.event_id for e in events]
    assert [(a.ok, a.duplicate, a.children_affected) for a in acks] == [
        (True, False, 2),
        (False, False, 0),
        (True, False, 2),
        (True, True, 2),
        (True, False, 2),
    ]
    assert acks[1].error_code == "FAILED_PRECONDITION" and serials[0] in acks[1].error_message
    counts = {
        box: plant["stub"]
        .GetCounts(
            aggregator_pb2.GetCountsRequest(parent=_box(box)),
            metadata=_md(plant["tokens"]["line"]),
            timeout=10,
        )
        .total
        for box in (boxes[0], boxes[2], boxes[3])
    }
    assert counts == {boxes[0]: 2, boxes[2]: 2, boxes[3]: 2}
    _fails(
        lambda: plant["stub"].GetCounts(
            aggregator_pb2.GetCountsRequest(parent=_box(boxes[1])),
            metadata=_md(plant["tokens"]["line"]),
            timeout=10,
        ),
        Code.NOT_FOUND,  # the refused event did not even register its SSCC
    )
