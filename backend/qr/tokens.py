"""Signed, compact tokens for the QR stickers on operators, stalls and instruments.

A token is ``base64url(payload || signature)`` without padding, where

* ``payload`` = one header byte (format version << 4 | subject kind) followed by three unsigned LEB128
  varints: key id, subject id, serial. Varints keep the common case small: kid < 128, ids below 2 million
  and serials below 128 make a 6-byte payload.
* ``signature`` = Ed25519 over ``b"gongping/qr/v1\\0" + payload`` (64 bytes); the prefix keeps a signature
  made by the same key for anything else from ever passing as a QR token.

So a typical token is 70 bytes = 94 characters, and the shortest possible is 91: the 64-byte signature alone
takes 86, so the "under 90" goal cannot be met with a full Ed25519 signature. It does not need to be: in
byte mode at error-correction level M, anything from 85 to 106 characters is a version-6 QR code (41×41
modules), so a few characters more or less do not change the sticker.

Keys rotate by key id (kid, 0–65535). A :class:`QRKeyRing` signs with one active key and verifies with
any key it knows by kid, so stickers printed under an old key stay valid until that kid is dropped. Keys are
either

* derived: a 32-byte Ed25519 seed = HKDF-SHA256(ikm=SECRET_KEY, salt=b"gongping/qr-token/v1",
  info=b"gongping/qr-token/ed25519/kid=<kid>"), so every process with the secret agrees without storing keys;
  leaking SECRET_KEY leaks every derived kid, so a leak means a new secret *and* new kids; or
* loaded from PEM files (PKCS#8 private key, SubjectPublicKeyInfo public keys), which lets the issuing
  service alone hold the private key while the app, the public page and partners hold public keys only.

Revocation is not decided here: the serial is returned, and the caller compares it with the current serial
in the database (an older serial is a revoked, reprinted sticker).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

TOKEN_FORMAT_VERSION = 1
SIGNATURE_BYTES = 64
MAX_KID = 0xFFFF
MAX_SUBJECT_ID = 2**63 - 1  # a PostgreSQL bigint
MAX_SERIAL = 2**32 - 1
#: Minimum length of the secret a key is derived from (the same floor config.Settings enforces).
MIN_SECRET_BYTES = 32

_DOMAIN = b"gongping/qr/v1\x00"
_HKDF_SALT = b"gongping/qr-token/v1"
_HKDF_INFO_PREFIX = b"gongping/qr-token/ed25519/kid="
# Header byte + three 1-byte varints, the least a well-formed payload can be.
_MIN_PAYLOAD_BYTES = 4
# Header + varints of at most 3 (kid), 9 (subject id) and 5 (serial) bytes.
_MAX_PAYLOAD_BYTES = 1 + 3 + 9 + 5
_MAX_TOKEN_CHARS = -(-(_MAX_PAYLOAD_BYTES + SIGNATURE_BYTES) * 4 // 3)
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]+")


class SubjectKind(StrEnum):
    """What a QR sticker stands for."""

    OPERATOR = "o"
    STALL = "s"
    INSTRUMENT = "i"


_KIND_CODE = {SubjectKind.OPERATOR: 1, SubjectKind.STALL: 2, SubjectKind.INSTRUMENT: 3}
_KIND_BY_CODE = {code: kind for kind, code in _KIND_CODE.items()}


@dataclass(frozen=True, slots=True)
class QRSubject:
    """The verified content of a token."""

    kind: SubjectKind
    subject_id: int
    serial: int
    kid: int


class QRRejection(StrEnum):
    """Why a token was refused (for logs and metrics; a person is only told it is not genuine)."""

    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_KID = "unknown_kid"
    BAD_SIGNATURE = "bad_signature"


class ForgedQR(ValueError):
    """The token is not one we issued with a key we still accept."""

    message_zh = "二维码无效或系伪造"
    message_en = "this QR code is not genuine"

    def __init__(self, reason: QRRejection) -> None:
        super().__init__(f"{self.message_en} ({reason}) / {self.message_zh}")
        self.reason = reason


def _put_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low = value & 0x7F
        value >>= 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _get_varint(buf: bytes, pos: int, max_bytes: int) -> tuple[int, int]:
    """Read a canonical LEB128 varint; a padded or overlong one would give one subject two tokens."""
    value = 0
    for i in range(max_bytes):
        if pos + i >= len(buf):
            raise ForgedQR(QRRejection.TRUNCATED)
        byte = buf[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if byte == 0 and i > 0:
                raise ForgedQR(QRRejection.MALFORMED)
            return value, pos + i + 1
    raise ForgedQR(QRRejection.MALFORMED)


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(token: str) -> bytes:
    if not _TOKEN_RE.fullmatch(token) or len(token) % 4 == 1:
        raise ForgedQR(QRRejection.MALFORMED)
    raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    # base64 leaves spare low bits in the last character; requiring them to be zero (the canonical form)
    # means no two token strings decode to the same bytes.
    if _b64encode(raw) != token:
        raise ForgedQR(QRRejection.MALFORMED)
    return raw


def _check_range(name: str, value: int, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return value


def derive_signing_key(secret: str | bytes, kid: int) -> Ed25519PrivateKey:
    """The Ed25519 key for ``kid`` derived from the application secret with HKDF-SHA256."""
    _check_range("kid", kid, 0, MAX_KID)
    ikm = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if len(ikm) < MIN_SECRET_BYTES:
        raise ValueError(f"the secret must be at least {MIN_SECRET_BYTES} bytes to derive QR keys from")
    hkdf = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO_PREFIX + str(kid).encode()
    )
    return Ed25519PrivateKey.from_private_bytes(hkdf.derive(ikm))


def load_signing_key_pem(data: bytes, password: bytes | None = None) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM (PKCS#8); any other key type is refused."""
    key = serialization.load_pem_private_key(data, password=password)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"expected an Ed25519 private key, got {type(key).__name__}")
    return key


def load_verification_key_pem(data: bytes) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM (SubjectPublicKeyInfo); any other key type is refused."""
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"expected an Ed25519 public key, got {type(key).__name__}")
    return key


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class QRKeyRing:
    """One active signing key plus every verification key still accepted, each under its kid."""

    def __init__(
        self,
        *,
        active_kid: int | None,
        signing_key: Ed25519PrivateKey | None,
        verification_keys: Mapping[int, Ed25519PublicKey] | None = None,
    ) -> None:
        if (active_kid is None) != (signing_key is None):
            raise ValueError("active_kid and signing_key go together")
        keys = dict(verification_keys or {})
        for kid in keys:
            _check_range("kid", kid, 0, MAX_KID)
        if active_kid is not None and signing_key is not None:
            _check_range("active_kid", active_kid, 0, MAX_KID)
            public = signing_key.public_key()
            if active_kid in keys and _raw(keys[active_kid]) != _raw(public):
                raise ValueError(f"kid {active_kid} has two different keys")
            keys[active_kid] = public
        if not keys:
            raise ValueError("a key ring needs at least one key")
        self._active_kid = active_kid
        self._signing_key = signing_key
        self._keys = keys

    @classmethod
    def from_secret(
        cls, secret: str | bytes, *, active_kid: int, retired_kids: Iterable[int] = ()
    ) -> QRKeyRing:
        """Keys derived from the application secret: sign with ``active_kid``, accept ``retired_kids`` too."""
        return cls(
            active_kid=active_kid,
            signing_key=derive_signing_key(secret, active_kid),
            verification_keys={kid: derive_signing_key(secret, kid).public_key() for kid in retired_kids},
        )

    @classmethod
    def from_pem(
        cls,
        *,
        active_kid: int | None,
        signing_key_pem: bytes | None,
        verification_key_pems: Mapping[int, bytes] | None = None,
        password: bytes | None = None,
    ) -> QRKeyRing:
        """Keys from PEM data; without a private key the ring can only verify."""
        return cls(
            active_kid=active_kid,
            signing_key=load_signing_key_pem(signing_key_pem, password)
            if signing_key_pem is not None
            else None,
            verification_keys={
                k: load_verification_key_pem(v) for k, v in (verification_key_pems or {}).items()
            },
        )

    @classmethod
    def from_pem_files(
        cls,
        *,
        active_kid: int | None,
        signing_key_file: Path | None,
        verification_key_files: Mapping[int, Path] | None = None,
        password: bytes | None = None,
    ) -> QRKeyRing:
        """Keys from PEM files, e.g. a mounted secret holding the private key and the older public keys."""
        return cls.from_pem(
            active_kid=active_kid,
            signing_key_pem=signing_key_file.read_bytes() if signing_key_file is not None else None,
            verification_key_pems={k: p.read_bytes() for k, p in (verification_key_files or {}).items()},
            password=password,
        )

    @property
    def active_kid(self) -> int | None:
        """The kid new tokens are signed with, or None for a verify-only ring."""
        return self._active_kid

    @property
    def kids(self) -> frozenset[int]:
        """Every kid whose tokens this ring accepts."""
        return frozenset(self._keys)

    def public_key_pem(self, kid: int) -> bytes:
        """The public key for ``kid`` as PEM, to hand to verify-only parties."""
        return self._keys[kid].public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def issue(self, kind: SubjectKind | str, subject_id: int, serial: int) -> str:
        """A signed token for the subject, under the active key."""
        if self._signing_key is None or self._active_kid is None:
            raise RuntimeError("this key ring has no signing key: it can only verify")
        code = _KIND_CODE[SubjectKind(kind)]
        payload = (
            bytes([TOKEN_FORMAT_VERSION << 4 | code])
            + _put_varint(self._active_kid)
            + _put_varint(_check_range("subject_id", subject_id, 1, MAX_SUBJECT_ID))
            + _put_varint(_check_range("serial", serial, 0, MAX_SERIAL))
        )
        return _b64encode(payload + self._signing_key.sign(_DOMAIN + payload))

    def verify(self, token: str | bytes) -> QRSubject:
        """The subject of a genuine token; raises :class:`ForgedQR` and nothing else for any input."""
        try:
            return self._verify(token)
        except ForgedQR:
            raise
        except Exception as exc:
            # The promise is "ForgedQR or a subject" for whatever a scanner hands us; an unexpected error
            # from a decoder must not become a 500 on the public page.
            raise ForgedQR(QRRejection.MALFORMED) from exc

    def _verify(self, token: str | bytes) -> QRSubject:
        if isinstance(token, bytes | bytearray):
            token = bytes(token).decode("ascii")  # UnicodeDecodeError → MALFORMED in verify()
        if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
            raise ForgedQR(QRRejection.MALFORMED)
        raw = _b64decode(token)
        if len(raw) < _MIN_PAYLOAD_BYTES + SIGNATURE_BYTES:
            raise ForgedQR(QRRejection.TRUNCATED)
        payload, signature = raw[:-SIGNATURE_BYTES], raw[-SIGNATURE_BYTES:]
        header = payload[0]
        if header >> 4 != TOKEN_FORMAT_VERSION:
            raise ForgedQR(QRRejection.UNSUPPORTED_VERSION)
        kind = _KIND_BY_CODE.get(header & 0x0F)
        if kind is None:
            raise ForgedQR(QRRejection.MALFORMED)
        kid, pos = _get_varint(payload, 1, 3)
        subject_id, pos = _get_varint(payload, pos, 9)
        serial, pos = _get_varint(payload, pos, 5)
        if pos != len(payload):
            # Bytes between the serial and the signature: a truncated signature shifts them here.
            raise ForgedQR(QRRejection.MALFORMED)
        key = self._keys.get(kid)
        if key is None:
            raise ForgedQR(QRRejection.UNKNOWN_KID)
        try:
            key.verify(signature, _DOMAIN + payload)
        except InvalidSignature:
            raise ForgedQR(QRRejection.BAD_SIGNATURE) from None
        if not (1 <= subject_id <= MAX_SUBJECT_ID and serial <= MAX_SERIAL):
            # Only reachable if the signing key itself signed out-of-range values, which issue() never does.
            raise ForgedQR(QRRejection.MALFORMED)
        return QRSubject(kind=kind, subject_id=subject_id, serial=serial, kid=kid)
