"""`sealmark verify` without a server: offline signature checks on codes minted and printed by
the issuer's own code with a real Ed25519 key (every notation, tampering, wrong, unknown,
retired and revoked keys, both key file formats, bad key files, stdin), and how the online
verdict is asked for and printed, against a fake Verify call."""

from __future__ import annotations

import argparse
import base64
import io
import json
import random
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from google.protobuf.timestamp_pb2 import Timestamp

from issuer.domain.encoding import CodeFormatter
from issuer.minting import MintSpec, mint
from sealmark.crypto.pins import PinScheme
from sealmark.errors import InvalidArgument
from sealmark.gs1 import GS, build_digital_link, build_element_string, build_hri
from sealmark.settings import load_settings
from sealmark.tenancy.alphabets import SERIAL_ALPHABETS
from sealmark.v1 import verifier_pb2
from sealmark_app.cli.main import build_parser
from sealmark_app.cli.verifying import (
    STDIN_LIMIT,
    KeySet,
    Outcome,
    PublishedKey,
    check_offline,
    default_locale,
    load_key_set,
    parse_key_set,
    render_response,
    response_document,
    run,
)

TODAY = date(2026, 1, 15)
GTIN = "09520123456788"
RESOLVER = "id.brand.example"
SETTINGS = load_settings({"SEALMARK_GRPC_HOST": "verifier.test", "SEALMARK_GRPC_PORT": "7443"})
ONLY_SIGNATURE = "offline check: the code's state, recalls and clone signals were not checked"


class Minted:
    """One code minted by ``issuer.minting.mint`` and printed by the issuer's formatter."""

    def __init__(self, key: Ed25519PrivateKey, key_id: str = "01", lot: str = "LOT-1") -> None:
        spec = MintSpec(
            tenant_id="brand",
            request_id="r1",
            gtin=GTIN,
            lot=lot,
            expiry=date(2030, 12, 31),
            production_date=date(2025, 11, 2),
            key_id=key_id,
            work_order="WO1",
            line_id="L1",
            alphabet=SERIAL_ALPHABETS["alnum-safe"],
            serial_length=12,
            pin_length=6,
        )
        minted = mint(
            spec,
            [0],
            lambda messages: [key.sign(m) for m in messages],
            PinScheme(b"unit-pepper-0123456789"),
            random.Random(7).randbytes,
            datetime(2026, 1, 1, tzinfo=UTC),
        )
        self.serial, self.signature = minted.serials[0], minted.signatures[0]
        formatter = CodeFormatter(GTIN, lot, spec.expiry, spec.production_date, RESOLVER)
        printed = formatter.print(self.serial, self.signature)
        self.digital_link = printed.digital_link
        self.element_string = printed.element_string
        self.printed_hri = printed.hri  # the issuer's HRI leaves (8030) out
        self.pairs = [("01", GTIN), ("17", "301231"), ("11", "251102"), ("10", lot)]
        self.pairs += [("21", self.serial), ("8030", self.signature)]


BRAND_KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
CODE = Minted(BRAND_KEY)


def public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def key_set(*keys: PublishedKey, source: str = "keys.json") -> KeySet:
    return KeySet(source, "brand", {k.key_id: k for k in keys})


KEYS = key_set(PublishedKey("01", public(BRAND_KEY), created_at="2026-01-01T00:00:00+00:00"))


# -- the offline check -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(CODE.digital_link, id="digital-link"),
        pytest.param(CODE.digital_link.replace("https://", "HTTPS://"), id="digital-link-upper"),
        pytest.param(CODE.element_string, id="element-string-gs"),
        pytest.param("]d2" + CODE.element_string, id="element-string-]d2"),
        pytest.param("]Q3" + CODE.element_string + "\r\n", id="element-string-]Q3-crlf"),
        pytest.param("^" + CODE.element_string.replace(GS, "^"), id="element-string-caret"),
        pytest.param(build_element_string(CODE.pairs), id="element-string-rebuilt"),
        pytest.param(build_hri(CODE.pairs), id="hri-with-8030"),
        pytest.param(build_digital_link(CODE.pairs, "https://other.example"), id="other-host"),
    ],
)
def test_a_code_as_the_issuer_printed_it_verifies_in_every_notation(payload: str) -> None:
    check = check_offline(payload, KEYS, today=TODAY)
    assert check.outcome is Outcome.VALID, check.message
    assert check.trusted and check.signature_valid
    assert check.message == f"signature valid — {ONLY_SIGNATURE}"
    assert check.code is not None and check.code.serial == CODE.serial
    assert check.key == KEYS.keys["01"]


def test_expiry_day_00_means_the_date_the_issuer_signed() -> None:
    # Asked for 301200, the issuer signs (and prints) the resolved date 301231.
    pairs = [(ai, "301200" if ai == "17" else value) for ai, value in CODE.pairs]
    assert check_offline(build_hri(pairs), KEYS, today=TODAY).outcome is Outcome.VALID


def test_a_lot_with_reserved_characters_verifies_from_its_percent_encoded_link() -> None:
    code = Minted(BRAND_KEY, lot="L/1+2%")
    assert "/10/L%2F1%2B2%25/" in code.digital_link
    assert check_offline(code.digital_link, KEYS, today=TODAY).outcome is Outcome.VALID


def _replace(pairs: list[tuple[str, str]], ai: str, value: str) -> list[tuple[str, str]]:
    return [(a, value if a == ai else v) for a, v in pairs]


def _flip(text: str, index: int) -> str:
    return text[:index] + ("B" if text[index] != "B" else "C") + text[index + 1 :]


@pytest.mark.parametrize(
    "pairs",
    [
        pytest.param(_replace(CODE.pairs, "21", _flip(CODE.serial, 3)), id="serial"),
        pytest.param(_replace(CODE.pairs, "10", "LOT-2"), id="lot"),
        pytest.param(_replace(CODE.pairs, "17", "311231"), id="expiry"),
        pytest.param(_replace(CODE.pairs, "01", "09520123456795"), id="gtin"),
        pytest.param(_replace(CODE.pairs, "8030", _flip(CODE.signature, 40)), id="signature"),
    ],
)
def test_one_changed_character_breaks_the_signature(pairs: list[tuple[str, str]]) -> None:
    check = check_offline(build_hri(pairs), KEYS, today=TODAY)
    assert check.outcome is Outcome.BAD_SIGNATURE
    assert not check.trusted and not check.signature_valid
    assert check.message.startswith("signature INVALID: key 01 did not sign this code")


def test_a_tampered_digital_link_is_caught() -> None:
    tampered = CODE.digital_link.replace(f"/21/{CODE.serial}", f"/21/{_flip(CODE.serial, 0)}")
    assert check_offline(tampered, KEYS, today=TODAY).outcome is Outcome.BAD_SIGNATURE


def test_another_key_under_the_same_id_does_not_verify() -> None:
    wrong = key_set(PublishedKey("01", public(OTHER_KEY)))
    assert check_offline(CODE.digital_link, wrong, today=TODAY).outcome is Outcome.BAD_SIGNATURE


def test_a_key_id_the_file_does_not_hold_is_named() -> None:
    check = check_offline(Minted(BRAND_KEY, key_id="07").digital_link, KEYS, today=TODAY)
    assert check.outcome is Outcome.UNKNOWN_KEY and check.key_id == "07" and check.key is None
    assert "key 07, which keys.json does not hold (it has 01)" in check.message


def test_a_retired_key_still_verifies_its_codes() -> None:
    retired = key_set(
        PublishedKey("01", public(BRAND_KEY), retired_at="2026-01-10T00:00:00+00:00"),
        PublishedKey("02", public(OTHER_KEY)),
    )
    assert check_offline(CODE.digital_link, retired, today=TODAY).outcome is Outcome.VALID


def test_a_revoked_key_is_reported_and_not_trusted() -> None:
    revoked = key_set(
        PublishedKey(
            "01",
            public(BRAND_KEY),
            revoked_at="2026-01-12T09:30:00+00:00",
            revoke_reason="laptop stolen",
        )
    )
    check = check_offline(CODE.digital_link, revoked, today=TODAY)
    assert check.outcome is Outcome.REVOKED_KEY
    assert check.signature_valid and not check.trusted
    assert "valid signature, but under key 01, revoked at 2026-01-12T09:30:00+00:00" in (
        check.message
    )
    assert "(laptop stolen)" in check.message


def test_a_code_without_signature_says_so() -> None:
    check = check_offline(CODE.printed_hri, KEYS, today=TODAY)
    assert check.outcome is Outcome.NO_SIGNATURE and not check.trusted
    assert check.message.startswith("no signature: the code carries no (8030)")
    assert check.code is not None and check.code.serial == CODE.serial


def test_a_compact_code_is_sent_online() -> None:
    # A compact-profile code: (01)(21) and the MAC in (92), which no key set can check.
    payload = f"https://{RESOLVER}/01/{GTIN}/21/{CODE.serial}?92=01{'7' * 20}"
    check = check_offline(payload, KEYS, today=TODAY)
    assert check.outcome is Outcome.NO_SIGNATURE and not check.trusted
    assert "MAC in (92)" in check.message and "online" in check.message


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        pytest.param("hello", "not a GS1 Digital Link", id="text"),
        pytest.param(f"https://{RESOLVER}/01/{GTIN}", "(21) serial", id="no-serial"),
        pytest.param(f"(01){GTIN[:-1]}1(21)A1", "PAYLOAD", id="bad-check-digit"),
        pytest.param("]Q1https-not", "PAYLOAD", id="plain-qr-text"),
    ],
)
def test_what_is_no_code_is_unparseable(payload: str, needle: str) -> None:
    check = check_offline(payload, KEYS, today=TODAY)
    assert check.outcome is Outcome.UNPARSEABLE and not check.trusted
    assert check.message.startswith("not a code that can be checked: PAYLOAD: ")
    assert needle in check.message


def test_an_8030_that_is_no_sealmark_signature_is_a_bad_signature() -> None:
    pairs = _replace(CODE.pairs, "8030", CODE.signature[:40])
    check = check_offline(build_hri(pairs), KEYS, today=TODAY)
    assert check.outcome is Outcome.BAD_SIGNATURE
    assert "not a Sealmark signature" in check.message


# -- key files ---------------------------------------------------------------------------------


def export_document(**overrides: Any) -> dict[str, Any]:
    """What `sealmark keys export` writes (json.dumps(default=str): times as str(datetime))."""
    entry: dict[str, Any] = {
        "key_id": "01",
        "algorithm": "Ed25519",
        "public_key": public(BRAND_KEY).hex(),
        "created_at": "2026-01-01 08:00:00.123456+00:00",
        "retired_at": None,
        "revoked_at": None,
        "revoke_reason": "",
    }
    entry.update(overrides)
    return {"tenant_id": "brand", "keys": [entry], "canonical_bytes": "sealmark-code-v1 …"}


def http_document(**overrides: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key_id": "01",
        "algorithm": "Ed25519",
        "public_key": base64.urlsafe_b64encode(public(BRAND_KEY)).decode().rstrip("="),
        "created_at": "2026-01-01T08:00:00Z",
        "retired_at": None,
        "revoked_at": None,
    }
    entry.update(overrides)
    return {"tenant": "brand", "keys": [entry]}


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(export_document(), id="keys-export"),
        pytest.param(http_document(), id="http-key-set"),
        pytest.param(
            http_document(public_key=base64.b64encode(public(BRAND_KEY)).decode()),
            id="standard-base64-padded",
        ),
    ],
)
def test_both_key_file_formats_load(document: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(document))
    keys = load_key_set(path)
    assert (keys.source, keys.tenant, list(keys.keys)) == (str(path), "brand", ["01"])
    assert keys.keys["01"].public_key == public(BRAND_KEY)
    assert keys.keys["01"].created_at is not None
    assert check_offline(CODE.element_string, keys, today=TODAY).outcome is Outcome.VALID


def test_key_times_are_read_as_utc_iso_8601() -> None:
    keys = parse_key_set(http_document(revoked_at="2026-01-12T09:30:00"), "k.json")
    assert keys.keys["01"].revoked_at == "2026-01-12T09:30:00+00:00"
    keys = parse_key_set(export_document(), "k.json")
    assert keys.keys["01"].created_at == "2026-01-01T08:00:00.123456+00:00"


def _two_keys() -> dict[str, Any]:
    document = export_document()
    document["keys"].append(dict(document["keys"][0]))
    return document


@pytest.mark.parametrize(
    ("document", "needle"),
    [
        pytest.param([], "keys: no list of keys", id="a-list"),
        pytest.param({"tenant": "brand"}, "keys: no list of keys", id="no-keys"),
        pytest.param({"tenant": "b", "keys": []}, "keys: empty", id="empty"),
        pytest.param({"tenant": 7, "keys": []}, "tenant: not a string", id="tenant-number"),
        pytest.param({"keys": ["01"]}, "keys[0]: not an object", id="entry-string"),
        pytest.param(export_document(key_id="1"), "keys[0].key_id: '1'", id="key-id"),
        pytest.param(export_document(key_id=None), "keys[0].key_id: None", id="no-key-id"),
        pytest.param(_two_keys(), "keys[1].key_id: key 01 appears twice", id="duplicate"),
        pytest.param(export_document(algorithm="ECDSA-P256"), "only Ed25519", id="algorithm"),
        pytest.param(export_document(public_key="abc"), "keys[0].public_key", id="key-short"),
        pytest.param(export_document(public_key=None), "keys[0].public_key", id="key-missing"),
        pytest.param(
            export_document(public_key=public(BRAND_KEY).hex()[:-2]), "32 bytes", id="key-31"
        ),
        pytest.param(http_document(public_key="!" * 43), "keys[0].public_key", id="key-not-base64"),
        pytest.param(export_document(revoked_at="yesterday"), "keys[0].revoked_at", id="time"),
        pytest.param(export_document(revoke_reason=3), "revoke_reason", id="reason"),
    ],
)
def test_a_malformed_key_set_is_refused_naming_file_and_entry(document: Any, needle: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        parse_key_set(document, "brand-keys.json")
    assert caught.value.field == "--keys"
    assert caught.value.reason.startswith("brand-keys.json: ")
    assert needle in caught.value.reason


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        pytest.param(None, "no such file", id="missing"),
        pytest.param(b"{not json", "not JSON (Expecting property name", id="not-json"),
        pytest.param(b"", "not JSON", id="empty-file"),
        pytest.param(b"\xff\xfe\x00", "not a UTF-8 text file", id="binary"),
    ],
)
def test_an_unreadable_key_file_is_refused_naming_it(
    content: bytes | None, needle: str, tmp_path: Path
) -> None:
    path = tmp_path / "keys.json"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InvalidArgument) as caught:
        load_key_set(path)
    assert caught.value.field == "--keys"
    assert caught.value.reason.startswith(f"{path}: {needle}")


def test_a_directory_is_no_key_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument) as caught:
        load_key_set(tmp_path)
    assert caught.value.reason.startswith(f"{tmp_path}: cannot read it: ")


# -- the command, offline ----------------------------------------------------------------------


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["verify", *argv])


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(export_document()))
    return path


def run_offline(
    keys_file: Path, payload: str, *extra: str, stdin: str = ""
) -> tuple[int, argparse.Namespace]:
    args = parse(payload, "--offline", "--keys", str(keys_file), *extra)
    return run(args, SETTINGS, {}, stdin=io.StringIO(stdin)), args


def test_offline_prints_that_only_the_signature_was_checked(
    keys_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = run_offline(keys_file, CODE.digital_link)
    out = capsys.readouterr().out
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == f"signature valid — {ONLY_SIGNATURE}"
    assert f"serial     {CODE.serial}" in lines
    assert "expiry     2030-12-31" in lines
    assert "brand      brand" in lines
    assert "key        01 (Ed25519, created 2026-01-01T08:00:00.123456+00:00)" in lines
    assert lines[-1] == "for the verdict (state, recalls, clones) run `sealmark verify` online"


@pytest.mark.parametrize(
    ("payload", "first_line"),
    [
        pytest.param(
            build_hri(_replace(CODE.pairs, "10", "LOT-2")), "signature INVALID", id="tampered"
        ),
        pytest.param(CODE.printed_hri, "no signature", id="unsigned"),
        pytest.param("hello", "not a code that can be checked", id="unparseable"),
        pytest.param(Minted(BRAND_KEY, key_id="07").digital_link, "unknown key", id="unknown"),
    ],
)
def test_offline_failures_exit_1(
    payload: str, first_line: str, keys_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = run_offline(keys_file, payload)
    assert status == 1
    assert capsys.readouterr().out.startswith(first_line)


def test_offline_revoked_key_exits_1_saying_when(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(
        json.dumps(export_document(revoked_at="2026-01-12 09:30:00+00:00", revoke_reason="leak"))
    )
    status, _ = run_offline(path, CODE.digital_link)
    lines = capsys.readouterr().out.splitlines()
    assert status == 1
    assert lines[0].startswith("NOT TRUSTED: valid signature, but under key 01, revoked at ")
    assert "2026-01-12T09:30:00+00:00 (leak)" in lines[0]
    assert lines[1] == ONLY_SIGNATURE
    assert "key        01 (Ed25519, created 2026-01-01T08:00:00.123456+00:00, REVOKED " in lines[-2]


def test_offline_shows_a_retired_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "keys.json"
    path.write_text(json.dumps(http_document(retired_at="2026-01-10T00:00:00Z")))
    status, _ = run_offline(path, CODE.digital_link)
    assert status == 0
    out = capsys.readouterr().out
    assert "retired 2026-01-10T00:00:00+00:00, its codes stay valid)" in out


def test_offline_json(keys_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, args = run_offline(keys_file, CODE.element_string, "--json")
    assert status == 0 and args.json
    document = json.loads(capsys.readouterr().out)
    assert document["mode"] == "offline"
    assert (document["result"], document["trusted"], document["signature_valid"]) == (
        "valid",
        True,
        True,
    )
    assert document["checked"].startswith("signature only")
    assert document["keys_file"] == str(keys_file) and document["tenant"] == "brand"
    assert document["code"] == {
        "gtin": GTIN,
        "serial": CODE.serial,
        "lot": "LOT-1",
        "expiry": "2030-12-31",
        "production_date": "2025-11-02",
        "key_id": "01",
    }
    assert document["key"]["key_id"] == "01" and document["key"]["revoked_at"] is None


def test_offline_json_for_a_failure(keys_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _ = run_offline(keys_file, "hello", "--json")
    document = json.loads(capsys.readouterr().out)
    assert status == 1
    assert (document["result"], document["trusted"], document["code"], document["key"]) == (
        "unparseable",
        False,
        None,
        None,
    )


@pytest.mark.parametrize(
    "text",
    [
        pytest.param(CODE.element_string + "\n", id="element-string-keeps-its-gs"),
        pytest.param("]d2" + CODE.element_string + "\r\n", id="scanner-crlf"),
        pytest.param(CODE.digital_link, id="no-line-end"),
    ],
)
def test_dash_reads_the_payload_from_stdin(
    text: str, keys_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _ = run_offline(keys_file, "-", stdin=text)
    assert status == 0, capsys.readouterr().out


@pytest.mark.parametrize("stdin", ["", "\n", "   \r\n"])
def test_empty_stdin_is_a_usage_error(stdin: str, keys_file: Path) -> None:
    with pytest.raises(InvalidArgument) as caught:
        run_offline(keys_file, "-", stdin=stdin)
    assert caught.value.field == "PAYLOAD" and "stdin" in caught.value.reason


def test_stdin_is_read_up_to_a_bound(keys_file: Path) -> None:
    with pytest.raises(InvalidArgument) as caught:
        run_offline(keys_file, "-", stdin="0" * (STDIN_LIMIT + 1))
    assert caught.value.reason == f"over {STDIN_LIMIT} characters (read from stdin)"


def test_an_empty_argument_is_a_usage_error() -> None:
    with pytest.raises(InvalidArgument) as caught:
        run(parse(" "), SETTINGS, {}, verify=FakeVerifier(SEEN_BEFORE))
    assert str(caught.value) == "PAYLOAD: empty"


def test_a_bad_key_file_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "nope.json"
    with pytest.raises(InvalidArgument) as caught:
        run_offline(path, CODE.digital_link)
    assert str(caught.value) == f"--keys: {path}: no such file"


@pytest.mark.parametrize(
    ("argv", "field"),
    [
        pytest.param(["--offline"], "--keys", id="offline-without-keys"),
        pytest.param(["--keys", "k.json"], "--keys", id="keys-without-offline"),
        pytest.param(["--offline", "--keys", "k.json", "--pin", "123"], "--pin", id="pin"),
        pytest.param(["--offline", "--keys", "k.json", "--region", "DE"], "--region", id="region"),
        pytest.param(["--offline", "--keys", "k.json", "--target", "h:1"], "--target", id="target"),
        pytest.param(
            ["--offline", "--keys", "k.json", "--lat", "0", "--lon", "0"], "--lat", id="0"
        ),
        pytest.param(["--offline", "--keys", "k.json", "--locale", "en"], "--locale", id="locale"),
        pytest.param(["--lat", "52.5"], "--lon", id="lat-without-lon"),
        pytest.param(["--lon", "13.4"], "--lat", id="lon-without-lat"),
    ],
)
def test_options_that_do_not_fit_are_named(argv: list[str], field: str) -> None:
    def unreachable(request: verifier_pb2.VerifyRequest, target: str) -> Any:
        raise AssertionError("nothing may be sent")

    with pytest.raises(InvalidArgument) as caught:
        run(parse(CODE.digital_link, *argv), SETTINGS, {}, verify=unreachable)
    assert caught.value.field == field


def test_offline_options_are_checked_before_stdin_is_read() -> None:
    class Unread(io.StringIO):
        def read(self, size: int | None = -1) -> str:
            raise AssertionError("stdin read before the options were checked")

    with pytest.raises(InvalidArgument) as caught:
        run(parse("-", "--offline"), SETTINGS, {}, stdin=Unread())
    assert caught.value.field == "--keys"


def test_json_may_come_before_or_after_the_command() -> None:
    assert build_parser().parse_args(["--json", "verify", "x"]).json
    assert parse("x", "--json").json
    assert not parse("x").json


# -- the command, online (a fake Verify call) --------------------------------------------------


class FakeVerifier:
    def __init__(self, response: verifier_pb2.VerifyResponse | Exception) -> None:
        self.response = response
        self.calls: list[tuple[verifier_pb2.VerifyRequest, str]] = []

    def __call__(
        self, request: verifier_pb2.VerifyRequest, target: str
    ) -> verifier_pb2.VerifyResponse:
        self.calls.append((request, target))
        if isinstance(self.response, Exception):
            raise self.response
        return self.response


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details


def timestamp(iso: str) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(datetime.fromisoformat(iso))
    return stamp


SEEN_BEFORE = verifier_pb2.VerifyResponse(
    verdict=verifier_pb2.VERDICT_AUTHENTIC_SEEN_BEFORE,
    reasons=[
        verifier_pb2.Reason(
            code="seen_before", rule="first verification", message="First verified on 3 Jan"
        )
    ],
    risk_score=0.1,
    product=verifier_pb2.ProductFacts(
        gtin=GTIN, name="Tonic", lot="LOT-1", expiry="2030-12-31", brand="Brand"
    ),
    first_verified_at=timestamp("2026-01-03T10:15:00+00:00"),
    first_verified_region="DE",
    session_count=2,
    serial=CODE.serial,
    verification_id="v-123",
    pin_available=True,
)


def test_the_request_carries_payload_pin_and_context() -> None:
    fake = FakeVerifier(SEEN_BEFORE)
    argv = ["--pin", "123456", "--session", "s-1", "--region", "DE", "--lat", "52.52"]
    args = parse(CODE.digital_link, *argv, "--lon", "13.4", "--locale", "zh-CN")
    assert run(args, SETTINGS, {}, verify=fake) == 0
    request, target = fake.calls[0]
    assert target == "verifier.test:7443"
    assert request.payload == CODE.digital_link and request.pin == "123456"
    context = request.context
    assert (context.session_id, context.region, context.locale) == ("s-1", "DE", "zh-CN")
    assert (context.latitude, context.longitude) == (52.52, 13.4)


def test_without_options_nothing_optional_is_sent() -> None:
    fake = FakeVerifier(SEEN_BEFORE)
    run(parse(CODE.digital_link, "--target", "h:1"), SETTINGS, {"LANG": "C.UTF-8"}, verify=fake)
    request, target = fake.calls[0]
    assert target == "h:1"
    assert not request.HasField("pin")
    assert not request.context.HasField("latitude") and not request.context.HasField("longitude")
    assert request.context.locale == "en"


@pytest.mark.parametrize(
    ("environ", "locale"),
    [
        ({}, "en"),
        ({"LANG": "zh_CN.UTF-8"}, "zh-CN"),
        ({"LANG": "en_US.UTF-8"}, "en"),
        ({"LANG": "de_DE.UTF-8"}, "en"),
        ({"LANG": "en_US.UTF-8", "LC_MESSAGES": "zh_CN.UTF-8"}, "zh-CN"),
        ({"LANG": "zh_CN.UTF-8", "LC_ALL": "C"}, "en"),
        ({"LANG": "zh_CN.UTF-8", "LC_ALL": ""}, "zh-CN"),
    ],
)
def test_the_locale_defaults_from_the_environment(environ: dict[str, str], locale: str) -> None:
    assert default_locale(environ) == locale


def test_seen_before_is_printed_with_its_history(capsys: pytest.CaptureFixture[str]) -> None:
    assert run(parse(CODE.digital_link), SETTINGS, {}, verify=FakeVerifier(SEEN_BEFORE)) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "AUTHENTIC_SEEN_BEFORE: genuine, verified before"
    assert lines[1] == "=" * len(lines[0])
    assert lines[2:4] == ["reasons:", "  - First verified on 3 Jan  [first verification]"]
    rows = {line.split("  ", 1)[0]: line.split("  ", 1)[1].strip() for line in lines[4:]}
    assert rows["product"] == "Tonic" and rows["brand"] == "Brand"
    assert rows["gtin"] == GTIN and rows["expiry"] == "2030-12-31"
    assert rows["serial"] == CODE.serial
    assert rows["first verified"] == "2026-01-03T10:15:00+00:00 in DE"
    assert rows["sessions"] == "2"
    assert rows["pin"] == "this item has a hidden PIN: verify again with --pin"
    assert rows["risk score"] == "0.10"
    assert rows["verification id"] == "v-123"
    assert "produced" not in rows  # empty facts are left out


def test_a_first_verification_says_so_and_a_confirmed_pin_too() -> None:
    response = verifier_pb2.VerifyResponse(
        verdict=verifier_pb2.VERDICT_AUTHENTIC,
        session_count=1,
        pin_available=True,
        pin_confirmed=True,
        degraded=True,
        verification_id="v-1",
    )
    text = render_response(response, "en")
    assert text.startswith("AUTHENTIC: genuine, first verification\n")
    assert "first verified   now: this is the first verification\n" in text
    assert "pin              confirmed: first opening\n" in text
    assert text.endswith(
        "note: answered in degraded mode (without its cache); the verdict stands\n"
    )


def test_an_entered_pin_that_was_not_confirmed_is_not_asked_for_again() -> None:
    response = verifier_pb2.VerifyResponse(
        verdict=verifier_pb2.VERDICT_SUSPECT_CLONE, pin_available=True, session_count=2
    )
    assert "pin              entered, not confirmed (see the reasons)\n" in render_response(
        response, "en", pin_entered=True
    )
    assert "verify again with --pin" in render_response(response, "en")


def test_a_code_never_verified_shows_no_session_count() -> None:
    response = verifier_pb2.VerifyResponse(verdict=verifier_pb2.VERDICT_COUNTERFEIT)
    text = render_response(response, "en")
    assert "sessions" not in text and "first verified" not in text
    assert text.endswith("risk score       0.00\nverification id  -\n")


def test_the_headline_follows_the_locale() -> None:
    text = render_response(SEEN_BEFORE, "zh-CN")
    headline, underline = text.splitlines()[:2]
    assert headline == "AUTHENTIC_SEEN_BEFORE: 正品，此前已验证过"
    assert len(underline) == len("AUTHENTIC_SEEN_BEFORE: ") + 2 * len("正品，此前已验证过")


@pytest.mark.parametrize(
    ("verdict", "status", "headline"),
    [
        (verifier_pb2.VERDICT_AUTHENTIC, 0, "AUTHENTIC: genuine, first verification"),
        (verifier_pb2.VERDICT_AUTHENTIC_SEEN_BEFORE, 0, "AUTHENTIC_SEEN_BEFORE: genuine"),
        (verifier_pb2.VERDICT_SUSPECT_CLONE, 1, "SUSPECT_CLONE: suspect copy"),
        (verifier_pb2.VERDICT_COUNTERFEIT, 1, "COUNTERFEIT: counterfeit"),
        (verifier_pb2.VERDICT_RECALLED, 1, "RECALLED: recalled: do not use"),
        (verifier_pb2.VERDICT_EXPIRED, 1, "EXPIRED: expired"),
        (verifier_pb2.VERDICT_INACTIVE, 1, "INACTIVE: inactive"),
        (verifier_pb2.VERDICT_DIVERTED, 1, "DIVERTED: genuine, but outside"),
        (verifier_pb2.VERDICT_INVALID, 1, "INVALID: not a code"),
        (verifier_pb2.VERDICT_UNSPECIFIED, 1, "UNSPECIFIED: no verdict"),
        (42, 1, "VERDICT 42: no verdict"),  # a verdict a newer server knows
    ],
)
def test_only_authentic_verdicts_exit_0(
    verdict: int, status: int, headline: str, capsys: pytest.CaptureFixture[str]
) -> None:
    response = verifier_pb2.VerifyResponse(verdict=verdict)  # type: ignore[arg-type]
    assert run(parse("x"), SETTINGS, {}, verify=FakeVerifier(response)) == status
    assert capsys.readouterr().out.startswith(headline)


def test_reasons_are_listed_with_their_rules(capsys: pytest.CaptureFixture[str]) -> None:
    response = verifier_pb2.VerifyResponse(
        verdict=verifier_pb2.VERDICT_SUSPECT_CLONE,
        reasons=[
            verifier_pb2.Reason(code="pin_reused", rule="any PIN reuse", message="PIN used"),
            verifier_pb2.Reason(code="too_many_sessions", rule="sessions > 3", message="5 times"),
        ],
        risk_score=0.9,
    )
    assert run(parse("x"), SETTINGS, {}, verify=FakeVerifier(response)) == 1
    out = capsys.readouterr().out
    assert "  - PIN used  [any PIN reuse]\n  - 5 times  [sessions > 3]\n" in out


def test_online_json_is_the_response_with_proto_field_names(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(parse("x", "--json"), SETTINGS, {}, verify=FakeVerifier(SEEN_BEFORE)) == 0
    document = json.loads(capsys.readouterr().out)
    assert document == response_document(SEEN_BEFORE)
    assert document["verdict"] == "VERDICT_AUTHENTIC_SEEN_BEFORE"
    assert document["first_verified_at"] == "2026-01-03T10:15:00Z"
    assert document["first_verified_region"] == "DE"
    assert document["session_count"] == 2 and document["verification_id"] == "v-123"
    assert document["reasons"][0]["rule"] == "first verification"
    assert document["product"]["production_date"] == ""  # every scalar is present
    assert document["pin_confirmed"] is False


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNIMPLEMENTED,
    ],
)
def test_a_failed_call_exits_2_never_1(
    code: grpc.StatusCode, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeVerifier(FakeRpcError(code, "VerifyRequest.payload: broken"))
    assert run(parse("x"), SETTINGS, {}, verify=fake) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"sealmark: {code.name}: VerifyRequest.payload: broken\n"
