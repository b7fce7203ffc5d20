"""Signed notes and checkpoints against external vectors (golang.org/x/mod/sumdb/note's tests,
the C2SP signed-note example, real sum.golang.org checkpoints) and against keys of our own."""

from __future__ import annotations

import base64

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sealmark.tlog.merkle import EMPTY_ROOT
from sealmark.tlog.note import (
    MAX_NOTE_BYTES,
    MAX_SIGNATURES,
    Checkpoint,
    NoteError,
    NoteSigner,
    NoteVerifier,
    ed25519_key_id,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_verifier_key,
)

# golang.org/x/mod/sumdb/note, note_test.go (TestNewVerifier, TestSign, TestOpen).
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_SIG = (
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqf"
    "qdngotpRZb6KE6RyyBwJnAM=\n"
)
ENOCH_SIG = (
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGw"
    "nWLox33WWd1RvMc+QQ=\n"
)
PETER_NOTE = TEXT + "\n" + PETER_SIG

# https://c2sp.org/signed-note, "Verifier keys / Example".
C2SP_VKEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
C2SP_NOTE = (
    "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi"
    "2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

# The Go checksum database's key (cmd/go) and checkpoints it signed, as quoted publicly;
# that they verify under this key is what makes them authentic.
SUMDB_VKEY = "sum.golang.org+033de0ae+Ac4zctda0e5eza+HJyk9SxEdh+s3Ux18htTTAD8OuAn8"
SUMDB_CHECKPOINTS = [
    (
        15368405,
        "/g9am3I6YWNKaZX/jkne1fqd9zEyjss+JXyPXG0WfkY=",
        "Az3grqJGUaSGukG9p8nI2vKgiFn7qGHxn0W+mrwyI6Gz3F0t1J3LzmWk/p96Ybf295EjwdSwlzgijq5WA9d1Ded7owM=",
    ),
    (
        63512409,
        "F7eHRPqN/cqPtqti14NKdGGaI1Giw8coWP3KxihFZbg=",
        "Az3gri1OBHKT87Xj8UXU8zjoHGy/X+7Nl94f8TZkELVaasolmGApUsWqwVG9vE6hgqYb/ph/w2vdkLIVRH7bMB/FPQ4=",
    ),
    (
        445646,
        "jEFFy4AtYgBBNTSZTiNnQrgQqMbcH0mfO2oP2FxR9VU=",
        "Az3grkGho/PqvUmEuTv6+r2g303hUhu60FOD6vLpm19mBwH9UjquWY2OKxNmZ55z0gHrp24AgPC3Q5WO7uZrVdvdCQU=",
    ),
]


def _own_signer(name: str = "sealmark.example/log", seed: int = 7) -> NoteSigner:
    return NoteSigner(name, Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32))


def _peter_signer() -> NoteSigner:
    seed = base64.b64decode(PETER_SKEY.split("+", 4)[4])[1:]  # drop the 0x01 type byte
    return NoteSigner("PeterNeumann", Ed25519PrivateKey.from_private_bytes(seed))


def test_go_vector_opens() -> None:
    assert open_note(PETER_NOTE, [parse_verifier_key(PETER_VKEY)]) == TEXT


def test_signing_with_the_go_key_reproduces_the_go_note() -> None:
    signer = _peter_signer()  # Ed25519 is deterministic: same key, same text, same bytes
    assert signer.sign(TEXT) == PETER_NOTE
    assert signer.verifier_key() == PETER_VKEY
    assert signer.key_id == bytes.fromhex("c74f20a3") == parse_verifier_key(PETER_VKEY).key_id
    assert "\n\n\u2014 PeterNeumann " in signer.sign(TEXT)


def test_two_signatures_each_verifier_alone_and_both() -> None:
    note = TEXT + "\n" + PETER_SIG + ENOCH_SIG
    peter, enoch = parse_verifier_key(PETER_VKEY), parse_verifier_key(ENOCH_VKEY)
    for verifiers in ([peter], [enoch], [peter, enoch], [enoch, peter, enoch]):
        assert open_note(note, verifiers) == TEXT
    # Repeated identical signatures are fine; each is checked.
    assert open_note(TEXT + "\n" + PETER_SIG * 2 + ENOCH_SIG * 2, [peter]) == TEXT


def test_c2sp_spec_example() -> None:
    verifier = parse_verifier_key(C2SP_VKEY)
    assert verifier.verifier_key() == C2SP_VKEY
    assert open_note(C2SP_NOTE, [verifier]) == "This is an example message.\n"


@pytest.mark.parametrize(("size", "root", "signature"), SUMDB_CHECKPOINTS)
def test_real_sum_golang_org_checkpoints(size: int, root: str, signature: str) -> None:
    text = f"go.sum database tree\n{size}\n{root}\n\n— sum.golang.org {signature}\n"
    checkpoint = open_checkpoint(text, [parse_verifier_key(SUMDB_VKEY)])
    assert checkpoint == Checkpoint("go.sum database tree", size, base64.b64decode(root))
    assert checkpoint.body() + "\n" + text.split("\n\n", 1)[1] == text
    with pytest.raises(NoteError, match=r"invalid signature by known key sum\.golang\.org"):
        open_checkpoint(text.replace(str(size), str(size + 1)), [parse_verifier_key(SUMDB_VKEY)])


def test_vkey_manglings_all_fail() -> None:
    # The same manglings as sumdb/note's TestNewVerifier: every proper substring, every byte
    # bumped by one, a wrong-length key and an unknown algorithm (with adjusted key IDs).
    key, n = PETER_VKEY, len(PETER_VKEY)
    bad = [key[i:j] for i in range(n + 1) for j in range(i + 1, n + 1) if (i, j) != (0, n)]
    bad += [key[:i] + chr(ord(c) + 1) + key[i + 1 :] for i, c in enumerate(key)]
    bad += [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ]  # fmt: skip
    accepted = []
    for vkey in bad:
        try:
            parse_verifier_key(vkey)
        except NoteError:
            continue
        accepted.append(vkey)
    assert accepted == []


@pytest.mark.parametrize(
    ("vkey", "message"),
    [
        ("PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "lowercase hex"),
        ("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "does not match"),
        ("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW=", "not canonical"),
        ("PeterNeumann+c74f20a3+AgAA", "signature type 0x02"),
        ("Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", "key name"),
        ("PeterNeumann", "want name\\+keyid\\+key"),
    ],
)
def test_vkey_rejections_say_why(vkey: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        parse_verifier_key(vkey)


def test_round_trip_with_our_own_key() -> None:
    signer = _own_signer()
    verifier = parse_verifier_key(signer.verifier_key())
    assert verifier == signer.verifier
    assert verifier.key_id == ed25519_key_id(signer.name, verifier.public_key)
    body = "first line\n\nan empty line above is part of the body\n"
    assert open_note(signer.sign(body), [verifier]) == body

    checkpoint = Checkpoint("sealmark.example/log", 42, bytes(range(32)), ("ext one", "two"))
    note = signer.sign(checkpoint.body())
    assert open_checkpoint(note, [verifier]) == checkpoint
    assert checkpoint.body() == (
        "sealmark.example/log\n42\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\next one\ntwo\n"
    )


def _with_signature_bytes(note: str, change: int) -> str:
    body, line = note[: note.rindex("— ")], note[note.rindex("— ") :]
    name, encoded = line[2:-1].split(" ")
    raw = bytearray(base64.b64decode(encoded))
    raw[change] ^= 0x01
    return f"{body}— {name} {base64.b64encode(bytes(raw)).decode()}\n"


def test_forgeries_fail() -> None:
    signer, other = _own_signer(), _own_signer(seed=8)  # same name, different keys
    body = Checkpoint("origin", 1, EMPTY_ROOT).body()
    note, mine = signer.sign(body), [signer.verifier]
    with pytest.raises(NoteError, match="invalid signature by known key"):
        open_note(note.replace("origin", "orig1n"), mine)  # tampered body
    with pytest.raises(NoteError, match="invalid signature by known key"):
        open_note(_with_signature_bytes(note, 20), mine)  # tampered signature
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(note, [other.verifier])  # only an unknown key signed
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(_with_signature_bytes(note, 0), mine)  # wrong key ID: an unknown key
    renamed = note.replace("— sealmark.example/log ", "— other.example/log ")
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(renamed, mine)  # right key ID, other name: an unknown key too
    # A bad signature by a known key sinks the note even beside a good one...
    both = note + _with_signature_bytes(other.sign(body), 30).split("\n\n")[1]
    with pytest.raises(NoteError, match="invalid signature by known key"):
        open_note(both, [signer.verifier, other.verifier])
    assert open_note(both, mine) == body  # ...but is ignored when its key is unknown


def test_open_refuses_no_verifiers_and_ambiguous_ones() -> None:
    with pytest.raises(NoteError, match="no verifiers given"):
        open_note(PETER_NOTE, [])
    peter = parse_verifier_key(PETER_VKEY)
    impostor = NoteVerifier("PeterNeumann", _own_signer().verifier.public_key)
    object.__setattr__(impostor, "key_id", peter.key_id)  # a 32-bit key ID collision
    with pytest.raises(NoteError, match="two keys for PeterNeumann\\+c74f20a3"):
        open_note(PETER_NOTE, [peter, impostor])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (TEXT, "no blank line"),
        (TEXT + "\n", "signature block is empty"),
        (TEXT + "\n" + PETER_SIG[:-1], "does not end in a newline"),
        ("\x01" + PETER_NOTE, "control character U\\+0001"),
        ("\udcff" + PETER_NOTE, "not valid UTF-8"),
        (TEXT + "\n" + PETER_SIG.replace("PeterNeumann", "Peter Neumann"), "line 0: not standard"),
        (PETER_NOTE + "Unexpected line.\n", "signature line 1: does not start with an em dash"),
        (PETER_NOTE.replace("—", "--"), "does not start with an em dash"),
        (PETER_NOTE.replace("— ", "—"), "does not start with an em dash"),
        (TEXT + "\n— PeterNeumann\n", "want '— name signature'"),
        (TEXT + "\n— Peter+Neumann x08go/ZJ\n", "key name"),
        (PETER_NOTE.replace("AM=", "AN="), "not canonical"),
        (PETER_NOTE.replace("AM=", "AM"), "not standard base64"),
        (TEXT + "\n— PeterNeumann x08goA==\n", "4 bytes, want a 4-byte key ID"),
        (TEXT + "\n" + PETER_SIG * (MAX_SIGNATURES + 1), "101 signature lines, limit 100"),
        ("x" * MAX_NOTE_BYTES + PETER_NOTE, "bytes, limit"),
    ],
)
def test_malformed_notes(text: str, message: str) -> None:
    with pytest.raises(NoteError, match=message):
        open_note(text, [parse_verifier_key(PETER_VKEY)])


def test_signer_refuses_what_could_not_be_opened() -> None:
    signer = _own_signer()
    with pytest.raises(NoteError, match="does not end in a newline"):
        signer.sign("no newline")
    with pytest.raises(NoteError, match="does not end in a newline"):
        signer.sign("")
    with pytest.raises(NoteError, match="control character"):
        signer.sign("tab\there\n")
    with pytest.raises(NoteError, match="limit"):
        signer.sign("x" * MAX_NOTE_BYTES + "\n")
    assert repr(signer) == f"NoteSigner('sealmark.example/log', key_id={signer.key_id.hex()})"


@pytest.mark.parametrize("name", ["", "a b", "a+b", "a\tb", "a\u00a0b", "a\u2028b", "a\x00b"])
def test_key_names_are_validated(name: str) -> None:
    with pytest.raises(NoteError, match="key name"):
        _own_signer(name)


ROOT64 = base64.b64encode(EMPTY_ROOT).decode()  # 47DEQpj8...hSuFU=


def test_checkpoint_parsing_accepts_the_spec_shapes() -> None:
    assert parse_checkpoint(f"o\n0\n{ROOT64}\n") == Checkpoint("o", 0, EMPTY_ROOT)
    big = parse_checkpoint(f"example.com/log 42\n{2**64 - 1}\n{ROOT64}\nx\ny z\n")
    assert (big.origin, big.size, big.extensions) == ("example.com/log 42", 2**64 - 1, ("x", "y z"))


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (f"o\n1\n{ROOT64}", "does not end in a newline"),
        ("o\n1\n", "2 lines, want at least 3"),
        (f"\n1\n{ROOT64}\n", "origin"),
        (f"o\r\n1\n{ROOT64}\n", "control character"),
        *((f"o\n{size}\n{ROOT64}\n", "size") for size in ["01", "-1", "+1", " 1", "1.0", "", "١"]),
        (f"o\n{2**64}\n{ROOT64}\n", "size"),
        (f"o\n1\n{ROOT64[:-1]}\n", "not standard base64"),
        (f"o\n1\n{ROOT64.replace('U=', 'V=')}\n", "not canonical"),
        (f"o\n1\n{ROOT64.replace('+', '-')}\n", "not standard base64"),
        (f"o\n1\n{base64.b64encode(EMPTY_ROOT[:31]).decode()}\n", "31 bytes, want 32"),
        (f"o\n1\n{ROOT64}\n\next\n", "extension line 0"),
    ],
)
def test_checkpoint_parsing_is_strict(body: str, message: str) -> None:
    with pytest.raises(NoteError, match=f"checkpoint.*{message}"):
        parse_checkpoint(body)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (("", 1, EMPTY_ROOT, ()), "origin"),
        (("a\nb", 1, EMPTY_ROOT, ()), "origin"),
        (("o", -1, EMPTY_ROOT, ()), "size"),
        (("o", 2**64, EMPTY_ROOT, ()), "size"),
        (("o", True, EMPTY_ROOT, ()), "size"),
        (("o", 1, EMPTY_ROOT[:31], ()), "root hash"),
        (("o", 1, EMPTY_ROOT, ("",)), "extension line 0"),
        (("o", 1, EMPTY_ROOT, ("ok", "a\nb")), "extension line 1"),
    ],
)
def test_checkpoint_fields_are_validated(fields: tuple[object, ...], message: str) -> None:
    with pytest.raises(NoteError, match=f"checkpoint {message}"):
        Checkpoint(*fields)  # type: ignore[arg-type]
