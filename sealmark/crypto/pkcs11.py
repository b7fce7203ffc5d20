"""Signing keys held in an HSM, reached through PKCS#11 (tested against SoftHSM2 ≥ 2.6).

Ed25519 key pairs are generated inside the token (CKK_EC_EDWARDS, CKM_EDDSA); the private key
is sensitive, never extractable and may only sign. :class:`Pkcs11Signer` implements the
:class:`sealmark.crypto.keys.Signer` port.

PKCS#11 keeps one login state per token for the whole process: a second ``C_Login`` fails
with CKR_USER_ALREADY_LOGGED_IN and one ``C_Logout`` logs every session out. So this module
holds one logged-in session per (module, token), reference-counted, and every other session
it opens is a plain session that inherits that login and never logs out.

Every ``pkcs11`` exception is translated in :func:`_translate`::

    module cannot be loaded, token missing, device error   -> Unavailable
    no key with the label                                  -> NotFound
    a key with the label exists already (generate_key)     -> AlreadyExists
    PIN rejected, token cannot do Ed25519, ambiguous label -> FailedPrecondition
"""

from __future__ import annotations

import glob
import hashlib
import hmac
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11 import exceptions as p11
from pkcs11.types import Session, SignMixin, Token

from sealmark.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    SealmarkError,
    Unavailable,
)

# DER of the OID id-Ed25519 (1.3.101.112, RFC 8410), the CKA_EC_PARAMS naming the curve.
ED25519_EC_PARAMS = bytes.fromhex("06032b6570")
_RAW_KEY_LEN = 32
_SIGNATURE_LEN = 64

_SOFTHSM_CANDIDATES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/*-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


@dataclass(frozen=True)
class Pkcs11Config:
    """Where the key lives. ``pin`` is the token's user PIN; it never appears in a repr."""

    module_path: str
    token_label: str
    pin: str

    def __repr__(self) -> str:
        return (
            f"Pkcs11Config(module_path={self.module_path!r}, "
            f"token_label={self.token_label!r}, pin='<redacted>')"
        )


def find_softhsm_module() -> str | None:
    """The path of SoftHSM2's PKCS#11 module on this machine, or None when not installed."""
    for pattern in _SOFTHSM_CANDIDATES:
        for path in sorted(glob.glob(pattern)):
            if os.path.isfile(path):
                return path
    return None


def generate_key(config: Pkcs11Config, label: str) -> bytes:
    """Create an Ed25519 key pair labelled ``label`` in the token; return the raw public key.

    The private key is stored on the token, sensitive, non-extractable and sign-only.
    Raises AlreadyExists when a private key with that label exists, Unavailable when the
    module or token cannot be opened, FailedPrecondition for a wrong PIN or a token without
    Ed25519 support.
    """
    with _translating(config, label), _session(config, rw=True) as session:
        if _find(session, ObjectClass.PRIVATE_KEY, label):
            raise AlreadyExists(f"token {config.token_label!r} has a key labelled {label!r}")
        params = session.create_domain_parameters(
            KeyType.EC_EDWARDS, {Attribute.EC_PARAMS: ED25519_EC_PARAMS}, local=True
        )
        public, _ = params.generate_keypair(
            id=label.encode("utf-8"),
            label=label,
            store=True,
            capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
            mechanism=Mechanism.EC_EDWARDS_KEY_PAIR_GEN,
            public_template={Attribute.PRIVATE: False},
            private_template={
                Attribute.SENSITIVE: True,
                Attribute.EXTRACTABLE: False,
                Attribute.SIGN: True,
                Attribute.DECRYPT: False,
                Attribute.UNWRAP: False,
                Attribute.DERIVE: False,
            },
        )
        return _raw_public_key(public[Attribute.EC_POINT], label)


def public_key(config: Pkcs11Config, label: str) -> bytes:
    """The raw 32-byte public key of the Ed25519 key pair ``label``. Raises NotFound."""
    with _translating(config, label), _session(config) as session:
        key = session.get_key(ObjectClass.PUBLIC_KEY, KeyType.EC_EDWARDS, label=label)
        return _raw_public_key(key[Attribute.EC_POINT], label)


class Pkcs11Signer:
    """A :class:`~sealmark.crypto.keys.Signer` whose private key stays in the token.

    Opens one session at construction and reuses it; ``sign`` is serialised by a lock, so
    one signer may be shared between threads. Construction raises NotFound for a missing
    label, FailedPrecondition for a wrong PIN, Unavailable when the token cannot be reached.
    Call :meth:`close` (or use it as a context manager) to give the session back.
    """

    def __init__(self, config: Pkcs11Config, label: str, key_id: str) -> None:
        self.key_id = key_id
        self._config = config
        self._label = label
        self._lock = threading.Lock()
        self._session: Session | None = None
        with _translating(config, label):
            token = _login(config)
            try:
                self._session = token.open()
                key = self._session.get_key(
                    ObjectClass.PRIVATE_KEY, KeyType.EC_EDWARDS, label=label
                )
            except BaseException:
                self._abandon()
                raise
        if not isinstance(key, SignMixin):  # pragma: no cover - python-pkcs11 invariant
            self._abandon()
            raise FailedPrecondition(f"PKCS#11 key {label!r} cannot sign")
        self._key: SignMixin = key

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``.

        Raises FailedPrecondition after :meth:`close`, Unavailable when the token fails.
        """
        with self._lock:
            if self._session is None:
                raise FailedPrecondition(f"PKCS#11 signer {self.key_id!r} is closed")
            with _translating(self._config, self._label):
                signature = self._key.sign(message, mechanism=Mechanism.EDDSA)
        if len(signature) != _SIGNATURE_LEN:
            raise FailedPrecondition(
                f"PKCS#11 key {self._label!r} returned a {len(signature)}-byte signature, want 64"
            )
        return signature

    def close(self) -> None:
        """Close the session. Idempotent; ``sign`` fails afterwards."""
        with self._lock, _translating(self._config, self._label):
            self._abandon()

    def __enter__(self) -> Pkcs11Signer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Pkcs11Signer(key_id={self.key_id!r}, label={self._label!r})"

    def _abandon(self) -> None:
        session, self._session = self._session, None
        try:
            if session is not None:
                session.close()
        finally:
            _logout(self._config)


# --- login state, shared per (module, token) -------------------------------------------------


@dataclass
class _Login:
    token: Token
    session: Session
    pin_digest: bytes
    refs: int


_logins: dict[tuple[str, str], _Login] = {}
_logins_lock = threading.Lock()


def _pin_digest(pin: str) -> bytes:
    return hashlib.sha256(pin.encode("utf-8")).digest()


def _login(config: Pkcs11Config) -> Token:
    """Log in to the token (or join the existing login); pair every call with _logout."""
    key = (config.module_path, config.token_label)
    with _logins_lock:
        login = _logins.get(key)
        if login is None:
            token = pkcs11.lib(config.module_path).get_token(token_label=config.token_label)
            session = token.open(user_pin=config.pin)
            _logins[key] = _Login(token, session, _pin_digest(config.pin), 1)
            return token
        if not hmac.compare_digest(login.pin_digest, _pin_digest(config.pin)):
            # The token is logged in with another PIN, which C_Login cannot re-check.
            raise p11.PinIncorrect()
        login.refs += 1
        return login.token


def _logout(config: Pkcs11Config) -> None:
    key = (config.module_path, config.token_label)
    with _logins_lock:
        login = _logins.get(key)
        if login is None:
            return
        login.refs -= 1
        if login.refs == 0:
            del _logins[key]
            login.session.close()


@contextmanager
def _session(config: Pkcs11Config, *, rw: bool = False) -> Iterator[Session]:
    token = _login(config)
    try:
        session = token.open(rw=rw)
        try:
            yield session
        finally:
            session.close()
    finally:
        _logout(config)


def _find(session: Session, object_class: ObjectClass, label: str) -> bool:
    objects = session.get_objects({Attribute.CLASS: object_class, Attribute.LABEL: label})
    return next(iter(objects), None) is not None


def _raw_public_key(ec_point: bytes, label: str) -> bytes:
    """The 32 key bytes from CKA_EC_POINT: a DER OCTET STRING (04 20 ‖ key), or raw bytes
    as some tokens return."""
    if len(ec_point) == _RAW_KEY_LEN + 2 and ec_point[:2] == bytes((0x04, _RAW_KEY_LEN)):
        return ec_point[2:]
    if len(ec_point) == _RAW_KEY_LEN:
        return ec_point
    raise FailedPrecondition(
        f"PKCS#11 key {label!r}: CKA_EC_POINT is {len(ec_point)} bytes, not an Ed25519 point"
    )


# --- the one translation boundary ------------------------------------------------------------

_PIN_ERRORS = (
    p11.PinIncorrect,
    p11.PinInvalid,
    p11.PinLenRange,
    p11.PinExpired,
    p11.PinLocked,
    p11.UserPinNotInitialized,
)
_UNSUPPORTED = (
    p11.MechanismInvalid,
    p11.MechanismParamInvalid,
    p11.FunctionNotSupported,
    p11.DomainParamsInvalid,
    p11.KeyTypeInconsistent,
    p11.TemplateInconsistent,
    p11.AttributeValueInvalid,
)


@contextmanager
def _translating(config: Pkcs11Config, label: str) -> Iterator[None]:
    try:
        yield
    except p11.PKCS11Error as exc:
        raise _translate(exc, config, label) from exc


def _translate(exc: p11.PKCS11Error, config: Pkcs11Config, label: str) -> SealmarkError:
    """Map a python-pkcs11 exception to the Sealmark error tree. Never mentions the PIN."""
    token = f"PKCS#11 token {config.token_label!r}"
    if isinstance(exc, _PIN_ERRORS):
        return FailedPrecondition(f"{token}: PIN rejected ({type(exc).__name__})")
    if isinstance(exc, p11.NoSuchKey):
        return NotFound(f"{token} has no Ed25519 key labelled {label!r}")
    if isinstance(exc, p11.MultipleObjectsReturned):
        return FailedPrecondition(f"{token} has several keys labelled {label!r}")
    if isinstance(exc, p11.NoSuchToken):
        return Unavailable(f"{token} not found in module {config.module_path}")
    if isinstance(exc, p11.UserAlreadyLoggedIn | p11.AnotherUserAlreadyLoggedIn):
        return FailedPrecondition(f"{token} is logged in by another part of this process")
    if isinstance(exc, _UNSUPPORTED):
        return FailedPrecondition(
            f"{token} cannot do Ed25519 (CKM_EDDSA; SoftHSM needs ≥ 2.6): {type(exc).__name__}"
        )
    detail = str(exc) or type(exc).__name__
    return Unavailable(f"{token} in module {config.module_path} is unavailable: {detail}")
