"""C2SP signed notes (https://c2sp.org/signed-note) with Ed25519 keys, and the tlog-checkpoint
body they carry (https://c2sp.org/tlog-checkpoint).

A signed note is a body ending in a newline, a blank line, then one line per signature::

    example.com/log
    42
    <base64 root hash>

    — example.com/log <base64(4-byte key ID ‖ 64-byte Ed25519 signature)>

Everything here fails closed with one error type::

    ValueError
     └── NoteError    malformed note, checkpoint, key or key name; bad or missing signature

Parsing is strict: standard base64 with padding and in canonical form only, no control
characters but newline, key names without whitespace or ``+``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ED25519_TYPE = 0x01  # signature type byte assigned by the signed-note spec
MAX_NOTE_BYTES = 1 << 20
MAX_SIGNATURES = 100  # the spec asks for a limit of at least 16; Go's sumdb/note uses 100
MAX_TREE_SIZE = 2**64 - 1  # tree sizes are uint64 in RFC 9162 and every deployed log

_SIG_PREFIX = "— "  # em dash U+2014, then a space
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,19}")
_HEX8 = re.compile(r"[0-9a-f]{8}")


class NoteError(ValueError):
    """A note, checkpoint, verifier key or key name is malformed, or its signatures do not
    verify; the message says which."""


@dataclass(frozen=True)
class Checkpoint:
    """A log's tree head: ``origin`` (the log's identity), ``size`` (number of leaves),
    ``root_hash`` (RFC 9162 root, 32 bytes) and optional opaque ``extensions`` lines.
    Raises NoteError when a field cannot be written as a tlog-checkpoint body."""

    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        _check_line("checkpoint origin", self.origin)
        if isinstance(self.size, bool) or not 0 <= self.size <= MAX_TREE_SIZE:
            raise NoteError(f"checkpoint size: {self.size!r}, want 0..{MAX_TREE_SIZE}")
        if not isinstance(self.root_hash, bytes) or len(self.root_hash) != 32:
            raise NoteError("checkpoint root hash: want 32 bytes")
        object.__setattr__(self, "extensions", tuple(self.extensions))
        for i, line in enumerate(self.extensions):
            _check_line(f"checkpoint extension line {i}", line)

    def body(self) -> str:
        """The note body: origin, size, base64 root, each extension line; each ends in LF."""
        root = base64.b64encode(self.root_hash).decode("ascii")
        lines = (self.origin, str(self.size), root, *self.extensions)
        return "".join(f"{line}\n" for line in lines)


def parse_checkpoint(body: str) -> Checkpoint:
    """Parse a checkpoint note body (as returned by :func:`open_note`). Raises NoteError unless
    it is at least three non-empty lines, each ending in LF: an origin, a decimal size without
    leading zeros, a canonical standard-base64 32-byte root hash, then extension lines."""
    if not body.endswith("\n"):
        raise NoteError("checkpoint: body does not end in a newline")
    if _CONTROL.search(body):
        raise NoteError("checkpoint: body contains a control character")
    lines = body[:-1].split("\n")
    if len(lines) < 3:
        raise NoteError(f"checkpoint: {len(lines)} lines, want at least 3")
    origin, size, root, *extensions = lines
    if not _DECIMAL.fullmatch(size):
        raise NoteError(f"checkpoint: size {size[:24]!r} is not a decimal without leading zeros")
    root_hash = _b64decode("checkpoint root hash", root)
    if len(root_hash) != 32:
        raise NoteError(f"checkpoint root hash: {len(root_hash)} bytes, want 32")
    return Checkpoint(origin, int(size), root_hash, tuple(extensions))


def ed25519_key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name ‖ LF ‖ 0x01 ‖ 32-byte public key)[:4]."""
    material = name.encode("utf-8") + b"\n" + bytes([ED25519_TYPE]) + public_key
    return hashlib.sha256(material).digest()[:4]


@dataclass(frozen=True)
class NoteVerifier:
    """One trusted Ed25519 key of a named signer. Raises NoteError on a bad name or key."""

    name: str
    public_key: bytes  # raw 32 bytes (RFC 8032)
    key_id: bytes = field(init=False, compare=False)  # derived from name and key
    _key: Ed25519PublicKey = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_key_name(self.name)
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise NoteError("verifier key: want a 32-byte Ed25519 public key")
        object.__setattr__(self, "key_id", ed25519_key_id(self.name, self.public_key))
        object.__setattr__(self, "_key", Ed25519PublicKey.from_public_bytes(self.public_key))

    def verifier_key(self) -> str:
        """``name+hex(key ID)+base64(0x01 ‖ public key)``."""
        material = base64.b64encode(bytes([ED25519_TYPE]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.key_id.hex()}+{material}"

    def verify(self, body: str, signature: bytes) -> bool:
        """Whether ``signature`` is this key's Ed25519 signature of the UTF-8 ``body``."""
        try:
            self._key.verify(signature, body.encode("utf-8"))
        except InvalidSignature:
            return False
        return True


def parse_verifier_key(vkey: str) -> NoteVerifier:
    """Parse ``name+hex8+base64(0x01 ‖ key)``. Raises NoteError on any deviation: bad name,
    key ID not 8 lowercase hex digits or not matching the key, non-canonical base64, another
    signature type, or a key that is not 32 bytes."""
    parts = vkey.split("+", 2)  # base64 may itself contain '+', names and IDs may not
    if len(parts) != 3:
        raise NoteError("verifier key: want name+keyid+key")
    name, hex_id, encoded = parts
    _check_key_name(name)
    if not _HEX8.fullmatch(hex_id):
        raise NoteError(f"verifier key {name}: key ID {hex_id!r}, want 8 lowercase hex digits")
    material = _b64decode(f"verifier key {name}", encoded)
    if not material or material[0] != ED25519_TYPE:
        kind = f"0x{material[0]:02x}" if material else "none"
        raise NoteError(f"verifier key {name}: signature type {kind}, want 0x01 (Ed25519)")
    verifier = NoteVerifier(name, material[1:])
    if verifier.key_id.hex() != hex_id:
        raise NoteError(f"verifier key {name}: key ID {hex_id} does not match the key")
    return verifier


class NoteSigner:
    """Signs note bodies with one named Ed25519 key. Raises NoteError on a bad key name."""

    __slots__ = ("_private_key", "key_id", "name", "verifier")

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.verifier = NoteVerifier(name, raw)  # validates the name
        self.name = name
        self.key_id = self.verifier.key_id
        self._private_key = private_key

    def __repr__(self) -> str:
        return f"NoteSigner({self.name!r}, key_id={self.key_id.hex()})"

    def verifier_key(self) -> str:
        return self.verifier.verifier_key()

    def sign(self, body: str) -> str:
        """The signed note: ``body``, a blank line, one signature line. Raises NoteError if the
        body does not end in a newline, has control characters, is not encodable as UTF-8, or
        would make a note over :data:`MAX_NOTE_BYTES`."""
        data = _note_bytes(body)
        if not body.endswith("\n"):
            raise NoteError("note body does not end in a newline")
        signature = self._private_key.sign(data)
        encoded = base64.b64encode(self.key_id + signature).decode("ascii")
        note = f"{body}\n{_SIG_PREFIX}{self.name} {encoded}\n"
        _note_bytes(note)
        return note


def open_note(text: str, verifiers: Sequence[NoteVerifier]) -> str:
    """The body of the signed note ``text``, once at least one of ``verifiers`` signed it.

    Signature lines whose (name, key ID) match no verifier are ignored, as the spec requires.
    Raises NoteError when ``verifiers`` is empty or ambiguous (two keys, one name and ID),
    the note is malformed (no blank line before the signatures, bad signature line, control
    characters, over :data:`MAX_NOTE_BYTES` or :data:`MAX_SIGNATURES`), a known key's
    signature does not verify, or no known key signed it."""
    if not verifiers:
        raise NoteError("open_note: no verifiers given; refusing to trust any note")
    _note_bytes(text)
    split = text.rfind("\n\n")  # the spec: the last blank line ends the body
    if split < 0:
        raise NoteError("note: no blank line between body and signatures")
    body, block = text[: split + 1], text[split + 2 :]
    if not block.endswith("\n"):
        raise NoteError("note: signature block is empty or does not end in a newline")
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note: {len(lines)} signature lines, limit {MAX_SIGNATURES}")
    signatures = [_parse_signature_line(i, line) for i, line in enumerate(lines)]

    known: dict[tuple[str, bytes], NoteVerifier] = {}
    for verifier in verifiers:
        other = known.setdefault((verifier.name, verifier.key_id), verifier)
        if other.public_key != verifier.public_key:
            raise NoteError(f"open_note: two keys for {verifier.name}+{verifier.key_id.hex()}")

    verified = 0
    for name, key_id, signature in signatures:
        key = known.get((name, key_id))
        if key is None:
            continue
        if not key.verify(body, signature):
            raise NoteError(f"note: invalid signature by known key {name}+{key_id.hex()}")
        verified += 1
    if not verified:
        raise NoteError("note: no signature by a known key")
    return body


def open_checkpoint(text: str, verifiers: Sequence[NoteVerifier]) -> Checkpoint:
    """:func:`open_note`, then :func:`parse_checkpoint` of its body. Raises NoteError."""
    return parse_checkpoint(open_note(text, verifiers))


def _parse_signature_line(index: int, line: str) -> tuple[str, bytes, bytes]:
    where = f"note: signature line {index}"
    if not line.startswith(_SIG_PREFIX):
        raise NoteError(f"{where}: does not start with an em dash and a space")
    name, space, encoded = line[len(_SIG_PREFIX) :].partition(" ")
    if not space:
        raise NoteError(f"{where}: want '— name signature'")
    _check_key_name(name)
    raw = _b64decode(where, encoded)
    if len(raw) < 5:
        raise NoteError(f"{where}: {len(raw)} bytes, want a 4-byte key ID and a signature")
    return name, raw[:4], raw[4:]


def _note_bytes(text: str) -> bytes:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise NoteError("note: not valid UTF-8 (lone surrogate)") from exc
    if len(data) > MAX_NOTE_BYTES:
        raise NoteError(f"note: {len(data)} bytes, limit {MAX_NOTE_BYTES}")
    if match := _CONTROL.search(text):
        raise NoteError(f"note: control character U+{ord(match.group()):04X} at {match.start()}")
    return data


def _check_key_name(name: str) -> None:
    if not name or "+" in name or any(ch.isspace() or ch < " " for ch in name):
        raise NoteError(f"key name {name[:64]!r}: want non-empty, no whitespace, no '+'")


def _check_line(what: str, line: str) -> None:
    if not isinstance(line, str) or not line or "\n" in line or _CONTROL.search(line):
        raise NoteError(f"{what}: want a non-empty line without control characters")


def _b64decode(what: str, text: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError as exc:
        raise NoteError(f"{what}: not standard base64") from exc
    # Canonical form only, so one value has exactly one encoding (no malleable padding bits).
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what}: not canonical standard base64 with padding")
    return raw
