"""aggregator.wire encodes ListChildren pages by hand; the protobuf runtime must read back
exactly the message it would have built itself, for every shape of row and of group."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aggregator.domain import ChildGroup
from aggregator.wire import STATES, Row, children_page, code_ref
from sealmark.v1 import aggregator_pb2, common_pb2

GTIN = "09520123456788"
OTHER_GTIN = "04012345000009"
CSET82 = "!\"%&'()*+,-./0123456789:;<=>?ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"


def _ref(key: str) -> common_pb2.CodeRef:
    if key.startswith("sscc:"):
        return common_pb2.CodeRef(sscc=key[5:])
    return common_pb2.CodeRef(sgtin=common_pb2.Sgtin(gtin=key[:14], serial=key[14:]))


def _expected(rows: list[Row], token: str) -> aggregator_pb2.ListChildrenResponse:
    """What the runtime builds from the same rows, field by field."""
    return aggregator_pb2.ListChildrenResponse(
        children=[
            aggregator_pb2.Child(
                code=_ref(key),
                parent=_ref(parent),
                depth=depth,
                state=STATES.get(state, 0),  # type: ignore[arg-type]
                level=level,  # type: ignore[arg-type]
                market=market or "",
            )
            for key, parent, depth, level, state, market in rows
        ],
        next_page_token=token,
    )


# Serials as issued (CSET 82), and any text: the encoder takes a fast path for ASCII keys only
# and must encode anything else as UTF-8 all the same. Two GTINs, so runs of items switch.
serials = st.one_of(st.text(CSET82, min_size=1, max_size=20), st.text(min_size=1, max_size=20))
ssccs = st.from_regex(r"\A[0-9]{18}\Z").map(lambda s: "sscc:" + s)
items = st.tuples(st.sampled_from([GTIN, OTHER_GTIN]), serials).map("".join)
# No key holds a newline (serials are CSET 82): groups join their keys with one.
keys = st.one_of(items, ssccs).filter(lambda k: "\n" not in k)
# Everything of a row after its key: what children under one parent share.
tails = st.tuples(
    keys,
    st.integers(1, 3),
    st.integers(1, 4),
    st.sampled_from([*STATES, "not-a-state"]),
    st.one_of(
        st.none(),
        st.just(""),
        st.from_regex(r"\A[A-Z]{2}(-[A-Z0-9]{1,3})?\Z"),
        st.text(max_size=5),
    ),
)
rows = st.lists(st.tuples(keys, tails).map(lambda kt: (kt[0], *kt[1])), max_size=40)


def _alone(row: Row) -> ChildGroup:
    """``row`` as a group of its own."""
    key, parent, depth, level, state, market = row
    return ChildGroup(depth, parent, key, 1, level, state, market)


def _run(tail: tuple[str, int, int, str, str | None], members: list[str]) -> ChildGroup:
    parent, depth, level, state, market = tail
    return ChildGroup(depth, parent, "\n".join(members), len(members), level, state, market)


# Pages as they come from the database: runs of children under one parent, sharing the tail.
runs = st.lists(
    st.tuples(tails, st.lists(keys, min_size=1, max_size=30)).map(lambda r: _run(*r)),
    max_size=6,
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(page=runs)
def test_runs_under_one_parent_read_back_as_the_runtime_builds_them(
    page: list[ChildGroup],
) -> None:
    rows = [row for group in page for row in group.rows()]
    encoded = children_page(page, "")
    assert aggregator_pb2.ListChildrenResponse.FromString(encoded) == _expected(rows, "")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(rows=rows, token=st.one_of(st.just(""), st.text(min_size=1, max_size=200)))
def test_pages_read_back_as_the_runtime_builds_them(rows: list[Row], token: str) -> None:
    encoded = children_page([_alone(row) for row in rows], token)
    assert aggregator_pb2.ListChildrenResponse.FromString(encoded) == _expected(rows, token)


def test_long_fields_take_multi_byte_lengths() -> None:
    # A market of 200 characters pushes the child past 127 bytes: the inlined one-byte path
    # must step aside for the general encoder.
    row: Row = (GTIN + "ABC", "sscc:" + "1" * 18, 2, 1, "in_transit", "X" * 200)
    decoded = aggregator_pb2.ListChildrenResponse.FromString(
        children_page([_alone(row)], "9" * 300)
    )
    assert decoded == _expected([row], "9" * 300)
    assert decoded.children[0].market == "X" * 200


def test_a_page_of_items_under_cases_matches_field_for_field() -> None:
    page: list[Row] = [
        ("sscc:195201230000000017", "sscc:195201230000000024", 1, 3, "in_transit", "DE")
    ]
    page += [
        (f"{GTIN}B{i:013d}", "sscc:195201230000000017", 2, 1, "in_transit", "DE") for i in range(24)
    ]
    decoded = aggregator_pb2.ListChildrenResponse.FromString(
        children_page([_alone(page[0]), _run(page[1][1:], [r[0] for r in page[1:]])], "2:x")
    )
    assert decoded == _expected(page, "2:x")
    assert decoded.children[5].code.sgtin.serial == "B0000000000004"
    assert decoded.children[5].state == common_pb2.CODE_STATE_IN_TRANSIT


def test_code_refs_match() -> None:
    for key in (GTIN + "1", GTIN + "x" * 20, "sscc:106141411234567896"):
        assert common_pb2.CodeRef.FromString(code_ref(key)) == _ref(key)


# Groups as the database hands them over: keys joined by newlines (no key holds one), with one
# tail or a level, state and market per key. Cases of one GTIN and serial length (the fast
# path) are drawn on purpose, and so is everything that must leave it: a second GTIN or serial
# length inside a group, SSCCs, non-ASCII serials, varying states.
uniform_members = st.tuples(
    st.sampled_from([GTIN, OTHER_GTIN]), st.integers(1, 20), st.integers(1, 30)
).flatmap(
    lambda g: st.lists(
        st.text(CSET82, min_size=g[1], max_size=g[1]), min_size=g[2], max_size=g[2]
    ).map(lambda serials: [g[0] + s for s in serials])
)
members = st.one_of(uniform_members, st.lists(keys, min_size=1, max_size=30))


@st.composite
def groups(draw: st.DrawFn) -> ChildGroup:
    parent, depth, level, state, market = draw(tails)
    member_keys = draw(members)
    varying = None
    if draw(st.integers(0, 3)) == 0:  # now and then: a level, state and market per key
        varying = tuple(draw(tails)[2:] for _ in member_keys)
    return ChildGroup(
        depth, parent, "\n".join(member_keys), len(member_keys), level, state, market, varying
    )


@settings(max_examples=200, deadline=None, derandomize=True)
@given(page=st.lists(groups(), max_size=5), token=st.one_of(st.just(""), st.text(max_size=50)))
def test_groups_read_back_as_the_runtime_builds_their_rows(
    page: list[ChildGroup], token: str
) -> None:
    rows = [row for group in page for row in group.rows()]
    encoded = children_page(page, token)
    assert aggregator_pb2.ListChildrenResponse.FromString(encoded) == _expected(rows, token)


def test_a_case_of_one_gtin_takes_the_group_path() -> None:
    serials = [f"B{i:013d}" for i in range(24)]
    case = ChildGroup(
        2,
        "sscc:195201230000000017",
        "\n".join(GTIN + s for s in serials),
        24,
        1,
        "in_transit",
        "DE",
    )
    decoded = aggregator_pb2.ListChildrenResponse.FromString(children_page([case], "t"))
    assert decoded == _expected(case.rows(), "t")
    assert [c.code.sgtin.serial for c in decoded.children] == serials
    # One key longer than the rest, or of another GTIN: the same bytes as one group per unit.
    for odd in (GTIN + "B00000000000000", OTHER_GTIN + "B0000000000001"):
        mixed = ChildGroup(
            2, case.parent, case.keys.replace(GTIN + serials[3], odd), 24, 1, "in_transit", "DE"
        )
        encoded = children_page([mixed], "")
        assert encoded == children_page([_alone(row) for row in mixed.rows()], "")
        assert aggregator_pb2.ListChildrenResponse.FromString(encoded) == _expected(
            mixed.rows(), ""
        )


def test_a_group_splits_where_a_page_ends() -> None:
    group = ChildGroup(
        2,
        "sscc:1",
        "a\nb\nc",
        3,
        1,
        "sampled",
        None,
        ((1, "sampled", None),) * 2 + ((1, "x", "DE"),),
    )
    first, rest = group.split(2)
    assert (first.keys, first.count, first.last_key) == ("a\nb", 2, "b")
    assert (rest.keys, rest.count, rest.varying) == ("c", 1, ((1, "x", "DE"),))
    assert first.rows() + rest.rows() == group.rows()
