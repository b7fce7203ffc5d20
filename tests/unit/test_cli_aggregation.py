"""The Aggregator client commands without a server: how units on the command line become
CodeRefs, what each command accepts, the requests it builds, and how `sealmark tree` prints."""

from __future__ import annotations

import argparse
import json
import re

import pytest

from sealmark.errors import InvalidArgument
from sealmark.gs1 import build_digital_link, build_element_string, build_hri, make_sscc
from sealmark.settings import load_settings
from sealmark.v1 import aggregator_pb2, common_pb2
from sealmark_app.cli.aggregation import (
    code_ref,
    level_name,
    render_tree,
    run,
    state_name,
    tree_document,
    unit_text,
    write_request,
)
from sealmark_app.cli.main import build_parser
from sealmark_app.cli.output import emit, endpoint

GTIN = "09520123456788"
PALLET = make_sscc(0, "9520123", 1)
CASE = make_sscc(0, "9520123", 2)
PAIRS = [("01", GTIN), ("17", "261130"), ("10", "LOT-1"), ("21", "AbC123")]
DIGITAL_LINK = build_digital_link(PAIRS, "https://id.sealmark.example")
ELEMENT_STRING = build_element_string(PAIRS)
HRI = build_hri(PAIRS)


def sscc(value: str) -> common_pb2.CodeRef:
    return common_pb2.CodeRef(sscc=value)


def sgtin(gtin: str, serial: str) -> common_pb2.CodeRef:
    return common_pb2.CodeRef(sgtin=common_pb2.Sgtin(gtin=gtin, serial=serial))


def scanned(payload: str) -> common_pb2.CodeRef:
    return common_pb2.CodeRef(scanned=payload)


# -- code_ref ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(PALLET, sscc(PALLET), id="sscc-18"),
        pytest.param("00" + PALLET, sscc(PALLET), id="sscc-00-prefix"),
        pytest.param(f"(00){PALLET}", sscc(PALLET), id="sscc-hri"),
        pytest.param(f"  {PALLET}\n", sscc(PALLET), id="sscc-surrounding-space"),
        pytest.param(f"{GTIN}/ABC123", sgtin(GTIN, "ABC123"), id="gtin14-serial"),
        pytest.param("9520123456788/abc", sgtin(GTIN, "abc"), id="gtin13-padded"),
        pytest.param("012345678905/7", sgtin("00012345678905", "7"), id="gtin12-padded"),
        pytest.param("95012346/x1", sgtin("00000095012346", "x1"), id="gtin8-padded"),
        pytest.param(f"{GTIN}/AB/12", sgtin(GTIN, "AB/12"), id="serial-with-slash"),
        pytest.param(DIGITAL_LINK, scanned(DIGITAL_LINK), id="digital-link-https"),
        pytest.param(
            f"http://example.com/01/{GTIN}/21/1",
            scanned(f"http://example.com/01/{GTIN}/21/1"),
            id="digital-link-http",
        ),
        pytest.param(ELEMENT_STRING, scanned(ELEMENT_STRING), id="element-string"),
        pytest.param(
            "]d2" + ELEMENT_STRING, scanned("]d2" + ELEMENT_STRING), id="element-string-]d2"
        ),
        pytest.param(
            f"01{GTIN}21123456", scanned(f"01{GTIN}21123456"), id="element-string-all-digits"
        ),
        pytest.param(f"01{GTIN}21AB/12", scanned(f"01{GTIN}21AB/12"), id="element-string-slash"),
        pytest.param(HRI, scanned(HRI), id="hri"),
        pytest.param(
            f"(00){PALLET}(02){GTIN}", scanned(f"(00){PALLET}(02){GTIN}"), id="hri-sscc-and-more"
        ),
    ],
)
def test_code_ref_accepts(text: str, expected: common_pb2.CodeRef) -> None:
    assert code_ref(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("   ", "empty", id="blank"),
        pytest.param(PALLET[:-1], "17 digits; an SSCC has 18", id="sscc-too-short"),
        pytest.param(f"(00){PALLET}9", "(00) takes 18 digits, got 19", id="hri-sscc-too-long"),
        pytest.param(f"(00){PALLET[:-1]}", "got 17", id="hri-sscc-too-short"),
        pytest.param(f"{GTIN}/", "serial after '/' is empty", id="empty-serial"),
        pytest.param("/ABC123", "GTIN before '/' is empty", id="empty-gtin"),
        pytest.param("/", "GTIN before '/' is empty", id="slash-alone"),
        pytest.param("12345/ABC", "GTIN '12345', want 8, 12, 13 or 14 digits", id="gtin-5"),
        pytest.param("0952012345678X/1", "want 8, 12, 13 or 14 digits", id="gtin-letter"),
        pytest.param("pallet-7", "want SSCC", id="free-text"),
        pytest.param("]Q1hello", "want SSCC", id="plain-qr-not-a-link"),
    ],
)
def test_code_ref_rejects_naming_the_argument(text: str, reason: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        code_ref(text, "CHILD")
    assert caught.value.field == "CHILD"
    assert reason in caught.value.reason
    assert str(caught.value).startswith("CHILD: ")


def test_code_ref_names_code_by_default() -> None:
    with pytest.raises(InvalidArgument) as caught:
        code_ref("")
    assert caught.value.field == "CODE"


@pytest.mark.parametrize(
    "ref", [sscc(PALLET), sgtin(GTIN, "AB/12"), scanned(DIGITAL_LINK)], ids=["sscc", "sgtin", "dl"]
)
def test_unit_text_reads_back_through_code_ref(ref: common_pb2.CodeRef) -> None:
    assert code_ref(unit_text(ref)) == ref


def test_enum_names_are_readable() -> None:
    assert state_name(common_pb2.CODE_STATE_IN_TRANSIT) == "in_transit"
    assert state_name(common_pb2.CODE_STATE_COMMISSIONED) == "commissioned"
    assert level_name(common_pb2.PACK_LEVEL_CASE) == "case"
    assert level_name(common_pb2.PACK_LEVEL_UNSPECIFIED) == "unspecified"
    assert state_name(99) == "99"  # a state a newer server knows and this client does not


# -- parsing and requests ----------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def test_pack_parses_and_builds_its_request() -> None:
    args = parse(
        "pack", PALLET, CASE, f"{GTIN}/A1", "--level", "pallet", "--line", "L7", "--event-id", "e-1"
    )
    assert (args.command, args.parent, args.children) == ("pack", PALLET, [CASE, f"{GTIN}/A1"])
    request, method = write_request(args)
    assert method == "Pack"
    assert request == aggregator_pb2.PackRequest(
        event_id="e-1",
        parent=sscc(PALLET),
        children=[sscc(CASE), sgtin(GTIN, "A1")],
        line_id="L7",
        parent_level=common_pb2.PACK_LEVEL_PALLET,
    )


def test_pack_defaults_let_the_server_pick_the_level_and_mint_an_event_id() -> None:
    args = parse("pack", CASE, f"{GTIN}/A1")
    assert (args.event_id, args.target, args.token, args.json) == (None, None, None, False)
    first, _ = write_request(args)
    second, _ = write_request(args)
    assert first.parent_level == common_pb2.PACK_LEVEL_UNSPECIFIED
    assert first.line_id == ""
    assert re.fullmatch(r"cli-[0-9a-f]{16}", first.event_id)
    assert first.event_id != second.event_id


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["pack", CASE], id="pack-without-children"),
        pytest.param(["pack", CASE, f"{GTIN}/1", "--level", "item"], id="pack-level-item"),
        pytest.param(["unpack"], id="unpack-without-parent"),
        pytest.param(["ship", PALLET, "--to", "4012345000009"], id="ship-without-market"),
        pytest.param(["ship", PALLET, "--market", "DE"], id="ship-without-to"),
        pytest.param(["ship", "--to", "p", "--market", "DE"], id="ship-without-codes"),
        pytest.param(["receive", PALLET], id="receive-without-from"),
        pytest.param(["decommission", PALLET], id="decommission-without-reason"),
        pytest.param(["decommission", PALLET, "--reason", "lost"], id="decommission-bad-reason"),
        pytest.param(["tree"], id="tree-without-code"),
        pytest.param(["tree", PALLET, "--event-id", "e"], id="tree-takes-no-event-id"),
    ],
)
def test_required_arguments_are_enforced(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        parse(*argv)
    assert caught.value.code == 2
    assert "usage: sealmark" in capsys.readouterr().err


def test_unpack_without_children_unpacks_everything() -> None:
    request, method = write_request(parse("unpack", CASE, "--event-id", "u-1"))
    assert method == "Unpack"
    assert request == aggregator_pb2.UnpackRequest(event_id="u-1", parent=sscc(CASE))
    request, _ = write_request(parse("unpack", CASE, f"{GTIN}/A1"))
    assert list(request.children) == [sgtin(GTIN, "A1")]


def test_ship_builds_its_request() -> None:
    args = parse("ship", PALLET, CASE, "--to", "4012345000009", "--market", "CN-31")
    request, method = write_request(args)
    assert method == "Ship"
    assert list(request.codes) == [sscc(PALLET), sscc(CASE)]
    assert (request.to_party, request.destination_market) == ("4012345000009", "CN-31")


def test_receive_builds_its_request() -> None:
    request, method = write_request(parse("receive", PALLET, "--from", "4012345000009"))
    assert method == "Receive"
    assert list(request.codes) == [sscc(PALLET)]
    assert request.from_party == "4012345000009"


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("dispensed", aggregator_pb2.DECOMMISSION_REASON_DISPENSED),
        ("destroyed", aggregator_pb2.DECOMMISSION_REASON_DESTROYED),
        ("stolen", aggregator_pb2.DECOMMISSION_REASON_STOLEN),
        ("locked", aggregator_pb2.DECOMMISSION_REASON_LOCKED),
        ("exported", aggregator_pb2.DECOMMISSION_REASON_EXPORTED),
        ("sample", aggregator_pb2.DECOMMISSION_REASON_SAMPLE),
        ("free-sample", aggregator_pb2.DECOMMISSION_REASON_FREE_SAMPLE),
    ],
)
def test_decommission_maps_every_reason(reason: str, expected: int) -> None:
    args = parse("decommission", f"{GTIN}/A1", "--reason", reason, "--note", "broken seal")
    request, method = write_request(args)
    assert method == "Decommission"
    assert (request.reason, request.note) == (expected, "broken seal")
    assert list(request.codes) == [sgtin(GTIN, "A1")]


def test_a_bad_unit_is_named_before_anything_is_sent() -> None:
    with pytest.raises(InvalidArgument) as caught:
        write_request(parse("pack", CASE, f"{GTIN}/A1", f"{GTIN}/"))
    assert caught.value.field == "CHILD"
    with pytest.raises(InvalidArgument) as caught:
        write_request(parse("pack", "/x", f"{GTIN}/A1"))
    assert caught.value.field == "PARENT"
    with pytest.raises(InvalidArgument) as caught:
        write_request(parse("receive", "nope", "--from", "p"))
    assert caught.value.field == "CODE"


def test_run_rejects_a_bad_unit_without_a_server() -> None:
    # The target is a port nothing listens on: failing there would be UNAVAILABLE, not this.
    args = parse("ship", "", "--to", "p", "--market", "DE", "--token", "t", "--target", "[::1]:1")
    with pytest.raises(InvalidArgument) as caught:
        run(args, load_settings({}))
    assert caught.value.field == "CODE"


@pytest.mark.parametrize(
    ("argv", "as_json"),
    [
        (["tree", PALLET], False),
        (["tree", PALLET, "--json"], True),
        (["--json", "tree", PALLET], True),
        (["--json", "ship", PALLET, "--to", "p", "--market", "DE"], True),
        (["ship", PALLET, "--to", "p", "--market", "DE", "--json"], True),
    ],
)
def test_json_may_come_before_or_after_the_command(argv: list[str], as_json: bool) -> None:
    assert parse(*argv).json is as_json


def test_target_and_token_come_from_options_then_settings() -> None:
    settings = load_settings({}, {"token": "from-env", "grpc_host": "agg", "grpc_port": 7001})
    given = endpoint(parse("tree", PALLET, "--target", "h:1", "--token", "tk"), settings)
    assert (given.target, given.metadata) == ("h:1", (("authorization", "Bearer tk"),))
    defaulted = endpoint(parse("tree", PALLET), settings)
    assert (defaulted.target, defaulted.metadata) == (
        "agg:7001",
        (("authorization", "Bearer from-env"),),
    )
    with pytest.raises(InvalidArgument) as caught:
        endpoint(parse("tree", PALLET), load_settings({}))
    assert caught.value.field == "--token"


# -- tree --------------------------------------------------------------------------------------

ITEM_1 = sgtin(GTIN, "A1")
ITEM_2 = sgtin(GTIN, "A2")
ITEM_3 = sgtin(GTIN, "B1")
BOX = sgtin("09520123456795", "BOX1")
OTHER_CASE = sscc(make_sscc(0, "9520123", 3))


def child(
    code: common_pb2.CodeRef, parent: common_pb2.CodeRef, depth: int, level: int, market: str = ""
) -> aggregator_pb2.Child:
    return aggregator_pb2.Child(
        code=code,
        parent=parent,
        depth=depth,
        state=common_pb2.CODE_STATE_IN_TRANSIT,
        level=level,
        market=market,
    )


# What ListChildren sends for the case: breadth first, so the items in the bundle come last.
CASE_CHILDREN = [
    child(BOX, sscc(CASE), 1, common_pb2.PACK_LEVEL_BUNDLE, "DE"),
    child(ITEM_3, sscc(CASE), 1, common_pb2.PACK_LEVEL_ITEM, "DE"),
    child(ITEM_1, BOX, 2, common_pb2.PACK_LEVEL_ITEM, "DE"),
    child(ITEM_2, BOX, 2, common_pb2.PACK_LEVEL_ITEM, "DE"),
]


def test_render_tree_puts_every_descendant_under_its_parent() -> None:
    text = render_tree(sscc(CASE), [sscc(PALLET)], CASE_CHILDREN)
    assert text == (
        "095201230000000011\n"
        "  095201230000000028     *\n"
        "    09520123456795/BOX1  bundle  in_transit  DE\n"
        "      09520123456788/A1  item    in_transit  DE\n"
        "      09520123456788/A2  item    in_transit  DE\n"
        "    09520123456788/B1    item    in_transit  DE\n"
    )


def test_render_tree_shows_ancestors_top_first() -> None:
    # GetAncestors sends the nearest parent first; the top parent is printed first.
    text = render_tree(ITEM_1, [BOX, sscc(CASE), sscc(PALLET)], [])
    assert [line.strip() for line in text.splitlines()] == [
        PALLET,
        CASE,
        "09520123456795/BOX1",
        f"{GTIN}/A1  *",
    ]
    assert [len(line) - len(line.lstrip()) for line in text.splitlines()] == [0, 2, 4, 6]


def test_render_tree_of_a_lone_code_is_one_line() -> None:
    assert render_tree(OTHER_CASE, [], []) == f"{OTHER_CASE.sscc}  *\n"


def test_tree_document_is_what_tree_json_prints(capsys: pytest.CaptureFixture[str]) -> None:
    emit(tree_document(sscc(CASE), [sscc(PALLET)], CASE_CHILDREN[:3]), True)
    assert json.loads(capsys.readouterr().out) == {
        "code": CASE,
        "ancestors": [PALLET],
        "descendants": [
            {
                "code": "09520123456795/BOX1",
                "parent": CASE,
                "depth": 1,
                "state": "in_transit",
                "level": "bundle",
                "market": "DE",
            },
            {
                "code": f"{GTIN}/B1",
                "parent": CASE,
                "depth": 1,
                "state": "in_transit",
                "level": "item",
                "market": "DE",
            },
            {
                "code": f"{GTIN}/A1",
                "parent": "09520123456795/BOX1",
                "depth": 2,
                "state": "in_transit",
                "level": "item",
                "market": "DE",
            },
        ],
    }


def test_render_tree_does_not_depend_on_the_order_children_arrive_in() -> None:
    lines = render_tree(sscc(CASE), [], CASE_CHILDREN[::-1]).splitlines()
    assert sorted(lines) == sorted(render_tree(sscc(CASE), [], CASE_CHILDREN).splitlines())
    box = next(i for i, line in enumerate(lines) if "/BOX1" in line)
    assert {lines[box + 1].split()[0], lines[box + 2].split()[0]} == {f"{GTIN}/A1", f"{GTIN}/A2"}
