"""The CBV 2.0 §8.9 EPCIS event hash: a canonical pre-hash string of an event and its SHA-256,
written ``ni:///sha-256;<hex>?ver=CBV2.0`` (RFC 6920).

The pre-hash string is ``eventType=…`` followed, without separators, by ``key=value`` pieces
in the canonical property order. Lists are sorted by their rendered pieces; identifiers,
timestamps and numbers take the forms of :mod:`sealmark.epcis.canonical`; CBV URNs, bare CBV
words and CURIEs become web URIs; extensions become ``{namespace}local`` and are sorted.

Where the CBV text leaves room we follow the GS1 reference implementation
(github.com/RalphTro/epcis-event-hash-generator) and its vectors: ``certificationInfo``
comes right after ``eventTimeZoneOffset``; ``bizTransactionList``, ``sourceList``,
``destinationList``, ``ilmd`` and extensions come after ``sensorElementList``, sorted as
whole pieces (so ``destinationList`` precedes ``sourceList``). We part from it only where it
is not representation-agnostic and no vector decides: numbers are normalised in quantity and
sensor value fields and for JSON numbers, never in strings such as lot numbers (``"007"``
stays ``007``); booleans are ``true``/``false``; Digital Link values are percent-encoded one
way; a TransactionEvent puts ``epcList`` before ``parentID``, as the CBV table does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from sealmark.epcis.canonical import (
    CANONICAL_ID,
    canonical_id,
    canonical_number,
    canonical_time,
)
from sealmark.epcis.events import EpcisError

JsonLdContext = str | Mapping[str, Any] | Sequence[str | Mapping[str, Any]]
"""A JSON-LD ``@context``: a URL, an object of term definitions, or a list of both."""

CBV = "https://ref.gs1.org/cbv/"
GS1_VOC = "https://gs1.org/voc/"
# The prefixes the standard EPCIS 2.0 context defines; a document's own @context wins.
STANDARD_PREFIXES: Mapping[str, str] = {
    "epcis": "https://ref.gs1.org/epcis/",
    "cbv": CBV,
    "cbvmda": "urn:epcglobal:cbv:mda:",
    "gs1": GS1_VOC,
}


def event_hash(event: Mapping[str, Any], context: JsonLdContext | None = None) -> str:
    """The CBV 2.0 event hash ``ni:///sha-256;<hex>?ver=CBV2.0`` of an EPCIS 2.0 JSON event.

    ``context`` is the ``@context`` of the enclosing document: its prefixes expand CURIEs.
    Raises EpcisError naming ``type`` when the event has no event type.
    """
    digest = hashlib.sha256(prehash(event, context).encode("utf-8")).hexdigest()
    return f"ni:///sha-256;{digest}?ver=CBV2.0"


def prehash(event: Mapping[str, Any], context: JsonLdContext | None = None) -> str:
    """The canonical pre-hash string of an EPCIS 2.0 JSON event (see the module docstring).

    ``eventID``, ``recordTime``, ``errorDeclaration`` and comments do not take part. Raises
    EpcisError naming ``type`` when the event has no event type.
    """
    kind = event.get("type")
    if not isinstance(kind, str) or not kind.strip():
        raise EpcisError("type", "an EPCIS event needs an event type to be hashed")
    render = _Renderer(namespaces(context, event.get("@context")))
    head = "".join(render.head(name, event[name]) for name in _ORDER if name in event)
    rest = sorted(
        piece
        for key, value in event.items()
        if key not in _ORDER and key not in _IGNORED
        for piece in render.rest(key, value)
    )
    return f"eventType={kind.strip()}{head}{''.join(rest)}"


def namespaces(*contexts: object) -> dict[str, str]:
    """Prefix → namespace IRI: the standard EPCIS prefixes, then the prefixes the given
    JSON-LD contexts define (later ones win). Anything that is not a context is ignored."""
    found = dict(STANDARD_PREFIXES)
    for context in contexts:
        for item in context if isinstance(context, list) else [context]:
            if isinstance(item, Mapping):
                found.update(
                    (k, v) for k, v in item.items() if isinstance(v, str) and not v.startswith("@")
                )
    return found


PLAIN, NUMBER, TIME = "", "#", "@"
"""Value kinds of a field; any other kind is the URI prefix a bare vocabulary word gets."""

_IGNORED = frozenset(
    {"type", "eventID", "recordTime", "errorDeclaration", "@context", "comment", "rdfs:comment"}
)
_DISP = CBV + "Disp-"
# The canonical property order, with the value kind of each plain field.
_ORDER: dict[str, str] = {"eventTime": TIME, "eventTimeZoneOffset": PLAIN}
_ORDER |= dict.fromkeys(("certificationInfo", "epcList", "parentID", "inputEPCList"), PLAIN)
_ORDER |= dict.fromkeys(("childEPCs", "quantityList", "childQuantityList"), PLAIN)
_ORDER |= dict.fromkeys(("inputQuantityList", "outputEPCList", "outputQuantityList"), PLAIN)
_ORDER |= {"action": PLAIN, "transformationID": PLAIN, "bizStep": CBV + "BizStep-"}
_ORDER |= {"disposition": _DISP, "persistentDisposition": PLAIN}
_ORDER |= dict.fromkeys(("readPoint", "bizLocation", "sensorElementList"), PLAIN)
_EPC_LISTS = frozenset(("epcList", "inputEPCList", "childEPCs", "outputEPCList"))
_LINKS = {"bizTransactionList": CBV + "BTT-", "sourceList": CBV + "SDT-"}
_LINKS["destinationList"] = CBV + "SDT-"
_QUANTITY = (("epcClass", PLAIN), ("quantity", NUMBER), ("uom", PLAIN))
_DEVICE = tuple((name, PLAIN) for name in ("deviceID", "deviceMetadata", "rawData"))
_METADATA = (("time", TIME), ("startTime", TIME), ("endTime", TIME), *_DEVICE)
_METADATA += (("dataProcessingMethod", PLAIN), ("bizRules", PLAIN))
_REPORT = (("type", GS1_VOC), ("exception", GS1_VOC), *_DEVICE, ("dataProcessingMethod", PLAIN))
_REPORT += (("time", TIME), ("microorganism", PLAIN), ("chemicalSubstance", PLAIN))
_REPORT += (("value", NUMBER), ("component", CBV + "Comp-"))
_REPORT += tuple((n, PLAIN) for n in ("stringValue", "booleanValue", "hexBinaryValue", "uriValue"))
_REPORT += tuple((n, NUMBER) for n in ("minValue", "maxValue", "meanValue", "sDev", "percRank"))
_REPORT += (("percValue", NUMBER), ("uom", PLAIN), ("coordinateReferenceSystem", PLAIN))
_CANONICAL = CANONICAL_ID
_CBV_URNS = {"bizstep": "BizStep-", "disp": "Disp-", "btt": "BTT-", "sdt": "SDT-", "er": "ER-"}


def _items(raw: object) -> list[Any]:
    return raw if isinstance(raw, list) else [raw]


class _Renderer:
    """Renders the pieces of one event's pre-hash string, given the document's prefixes."""

    def __init__(self, prefixes: Mapping[str, str]) -> None:
        self.prefixes = prefixes

    def value(self, raw: object, kind: str = PLAIN) -> str:
        if isinstance(raw, bool):
            return "true" if raw else "false"
        text = str(raw).strip()
        if kind == NUMBER or isinstance(raw, int | float):
            return canonical_number(raw) or text
        if kind == TIME:
            return canonical_time(text) or text
        if kind and text and ":" not in text:
            return kind + text  # a bare word of the CBV or the GS1 Web Vocabulary
        if text.startswith("urn:epcglobal:cbv:"):
            scheme, _, word = text[18:].partition(":")
            if scheme in _CBV_URNS:
                return CBV + _CBV_URNS[scheme] + word
        prefix, colon, local = text.partition(":")
        if colon and prefix in self.prefixes:
            text = self.prefixes[prefix] + local
        if text.startswith("urn:epc:") or text[:4].lower() == "http":
            return canonical_id(text) or text
        return text

    def key(self, key: str) -> str:
        prefix, colon, local = key.partition(":")
        return f"{{{self.prefixes[prefix]}}}{local}" if colon and prefix in self.prefixes else key

    def fields(self, obj: object, spec: Sequence[tuple[str, str]]) -> str:
        """The fields of ``spec`` in its order, then the object's extensions, sorted."""
        if not isinstance(obj, Mapping):
            return ""
        pieces = [self.plain(name, obj[name], kind) for name, kind in spec if name in obj]
        known = {name for name, _ in spec}
        extras = [
            piece
            for key, value in obj.items()
            if key not in known and key not in _IGNORED
            for piece in self.extension(key, value)
        ]
        return "".join(pieces) + "".join(sorted(extras))

    def plain(self, name: str, raw: object, kind: str = PLAIN) -> str:
        return "".join(
            sorted(f"{name}={self.value(v, kind)}" for v in _items(raw) if v is not None)
        )

    def extension(self, key: str, raw: object) -> list[str]:
        """``{namespace}local=value`` pieces; an object nests its own sorted pieces, and a
        list repeats the key for each element."""
        if isinstance(raw, list):
            return [piece for item in raw for piece in self.extension(key, item)]
        if isinstance(raw, Mapping):
            inner = (p for k, v in raw.items() if k not in _IGNORED for p in self.extension(k, v))
            return [self.key(key) + "".join(sorted(inner))]
        if raw is None:
            return []
        text = self.value(raw)
        return [self.key(key) + (f"={text}" if text else "")]

    @staticmethod
    def group(name: str, pieces: list[str]) -> str:
        joined = "".join(sorted(pieces))
        return name + joined if joined else ""

    def head(self, name: str, raw: Any) -> str:
        """A field of the canonical property order."""
        if name in _EPC_LISTS:
            # Our own exports write canonical Digital Links already: the common case, cheap.
            pieces = [
                f"epc={epc}"
                if isinstance(epc, str) and _CANONICAL.fullmatch(epc)
                else f"epc={self.value(epc)}"
                for epc in _items(raw)
            ]
            return self.group(name, pieces)
        if name.endswith("QuantityList") or name == "quantityList":
            pieces = [f"quantityElement{self.fields(q, _QUANTITY)}" for q in _items(raw)]
            return self.group(name, pieces)
        if name == "sensorElementList":
            return self.group(name, [self.sensor_element(element) for element in _items(raw)])
        if name in ("readPoint", "bizLocation"):
            return self.group(name, [self.fields(raw, (("id", PLAIN),))])
        if name == "persistentDisposition" and isinstance(raw, Mapping):
            pieces = [self.plain(k, raw[k], _DISP) for k in ("set", "unset") if k in raw]
            return name + "".join(pieces) if any(pieces) else ""
        return self.plain(name, raw, _ORDER[name])

    def sensor_element(self, element: object) -> str:
        if not isinstance(element, Mapping):
            return ""
        metadata = element.get("sensorMetadata")
        reports = [
            f"sensorReport{self.fields(r, _REPORT)}"
            for r in _items(element.get("sensorReport", []))
        ]
        rest = {k: v for k, v in element.items() if k not in ("sensorMetadata", "sensorReport")}
        return (
            "sensorElement"
            + (f"sensorMetadata{self.fields(metadata, _METADATA)}" if metadata else "")
            + "".join(sorted(reports))
            + self.fields(rest, ())
        )

    def rest(self, key: str, raw: Any) -> list[str]:
        """The pieces of a field outside the fixed order; the caller sorts them all."""
        if key in _LINKS:
            spec = (("type", _LINKS[key]), (key.removesuffix("List"), PLAIN))
            return [self.group(key, [self.fields(link, spec) for link in _items(raw)])]
        if key == "ilmd" and isinstance(raw, Mapping):
            return [self.group(key, [self.fields(raw, ())])]
        return self.extension(key, raw)
