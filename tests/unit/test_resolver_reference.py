"""The resolver's rules against GS1's published data (tests/reference/gs1-resolver/): the
GS1 Web Vocabulary's link types, and the GS1 resolver test suite's model linkset with the
outcome its test suite (GS1DigitalLinkResolverTestSuite.js) expects for every link: a
redirect to that link when asked with its attributes, 300 Multiple Choices for links whose
attributes (media type, language, context) are identical."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sealmark.gs1.links import LINK_TYPES, ProductLink, link_type_name
from tests.reference import GS1_RESOLVER
from verifier.linkset import select

PUBLISHED_TYPES: dict[str, dict[str, str]] = json.loads(
    (GS1_RESOLVER / "currentLinkTypes.json").read_text(encoding="utf-8")
)
MODEL: dict[str, Any] = json.loads((GS1_RESOLVER / "modelLinkset.json").read_text("utf-8"))
# The product-level anchor (our links are registered per GTIN; the model's serial-level
# anchor, /01/…/21/1234, holds a link per serial, which this resolver does not register).
PRODUCT = next(a for a in MODEL["linkset"] if "/21/" not in a["anchor"])
RESOLVER_SET = {"defaultLink", "defaultLinkMulti"}


def _links() -> list[tuple[str, int, ProductLink, dict[str, Any]]]:
    out = []
    for relation, targets in PRODUCT.items():
        if relation in ("anchor", "itemDescription", "description"):
            continue
        name = link_type_name(relation)
        assert name is not None, relation
        if name in RESOLVER_SET:
            continue
        for index, target in enumerate(targets):
            link = ProductLink(
                name,
                target["href"],
                target["title"],
                (target.get("hreflang") or [""])[0],
                (target.get("context") or [""])[0],
                target.get("type", ""),
            )
            out.append((name, index, link, target))
    return out


LINKS = _links()
ALL = [link for _, _, link, _ in LINKS]


def _attributes(target: dict[str, Any]) -> tuple[object, ...]:
    return (target.get("type"), tuple(target.get("hreflang", ())), tuple(target.get("context", ())))


def _expect_300(name: str, target: dict[str, Any]) -> bool:
    """The test suite's rule: another link of the type has identical attributes."""
    same = [t for t in PRODUCT[f"https://ref.gs1.org/voc/{name}"] if t is not target]
    return any(_attributes(t) == _attributes(target) for t in same)


@pytest.mark.parametrize("title", sorted(PUBLISHED_TYPES))
def test_every_published_link_type_is_known_with_its_title(title: str) -> None:
    assert LINK_TYPES[title] == PUBLISHED_TYPES[title]["title"]
    assert link_type_name(f"gs1:{title}") == title
    assert link_type_name(f"https://ref.gs1.org/voc/{title}") == title


def test_the_newer_link_types_are_the_vocabulary_1_16_additions() -> None:
    assert set(LINK_TYPES) - set(PUBLISHED_TYPES) == {
        "backgroundInfo",
        "dpp",
        "eifu",
        "reportFound",
    }


@pytest.mark.parametrize(
    ("name", "index", "link", "target"),
    LINKS,
    ids=[f"{name}[{index}]" for name, index, _, _ in LINKS],
)
def test_the_model_linkset_resolves_as_the_test_suite_expects(
    name: str, index: int, link: ProductLink, target: dict[str, Any]
) -> None:
    chosen = select(
        ALL,
        name,
        languages=[link.lang] if link.lang else [],
        context=link.context,
        media_types=[link.media_type] if link.media_type else [],
    )
    if _expect_300(name, target):
        assert len(chosen) > 1 and link in chosen  # 300 Multiple Choices, this link among them
    else:
        assert chosen == [link]  # 307 to exactly this link


def test_the_model_linkset_has_both_outcomes() -> None:
    outcomes = {_expect_300(name, target) for name, _, _, target in LINKS}
    assert outcomes == {True, False}
