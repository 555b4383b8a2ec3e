"""Signed QR tokens: issue, verify, rotate keys, and refuse everything else with ForgedQR only."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
import segno
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.qr.tokens import (
    MAX_SERIAL,
    MAX_SUBJECT_ID,
    ForgedQR,
    QRKeyRing,
    QRRejection,
    QRSubject,
    SubjectKind,
    derive_signing_key,
    load_signing_key_pem,
    load_verification_key_pem,
)

SECRET = "test-secret-key-with-at-least-32-characters!"
OTHER_SECRET = "another-secret-key-with-at-least-32-characters"


@pytest.fixture(scope="module")
def ring() -> QRKeyRing:
    return QRKeyRing.from_secret(SECRET, active_kid=3)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


@pytest.mark.parametrize("kind", list(SubjectKind))
def test_round_trip_for_every_kind(ring: QRKeyRing, kind: SubjectKind) -> None:
    token = ring.issue(kind, 123_456, 2)
    assert ring.verify(token) == QRSubject(kind=kind, subject_id=123_456, serial=2, kid=3)


def test_kind_may_be_given_as_its_letter(ring: QRKeyRing) -> None:
    assert ring.verify(ring.issue("i", 9, 0)).kind is SubjectKind.INSTRUMENT


def test_tokens_are_url_safe_unpadded_and_compact(ring: QRKeyRing) -> None:
    small = ring.issue(SubjectKind.STALL, 1, 0)
    typical = ring.issue(SubjectKind.INSTRUMENT, 2_000_000, 5)  # ids up to 2**21 take 3 bytes
    national = ring.issue(SubjectKind.INSTRUMENT, 50_000_000, 5)  # 50 million instruments: 4 bytes
    largest = QRKeyRing.from_secret(SECRET, active_kid=65_535).issue(
        SubjectKind.OPERATOR, MAX_SUBJECT_ID, MAX_SERIAL
    )
    assert (len(small), len(typical), len(national), len(largest)) == (91, 94, 95, 110)
    for token in (small, typical, national, largest):
        assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_typical_token_fits_a_version_6_qr_code_at_level_m(ring: QRKeyRing) -> None:
    token = ring.issue(SubjectKind.INSTRUMENT, 50_000_000, 5)
    qr = segno.make(token, error="m", micro=False, boost_error=False)
    assert qr.version == 6


def test_issue_is_deterministic_and_serial_changes_the_token(ring: QRKeyRing) -> None:
    assert ring.issue(SubjectKind.OPERATOR, 42, 1) == ring.issue(SubjectKind.OPERATOR, 42, 1)
    assert ring.issue(SubjectKind.OPERATOR, 42, 1) != ring.issue(SubjectKind.OPERATOR, 42, 2)


def test_same_secret_and_kid_give_the_same_key_in_every_process() -> None:
    one = QRKeyRing.from_secret(SECRET, active_kid=3)
    two = QRKeyRing.from_secret(SECRET.encode(), active_kid=3)
    assert two.verify(one.issue(SubjectKind.STALL, 7, 0)).subject_id == 7
    assert one.public_key_pem(3) == two.public_key_pem(3)


def test_different_kids_derive_different_keys() -> None:
    raw = [
        derive_signing_key(SECRET, kid)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        for kid in (0, 1, 2, 65535)
    ]
    assert len(set(raw)) == 4


def test_rotation_old_tokens_stay_valid_until_their_kid_is_dropped() -> None:
    old_ring = QRKeyRing.from_secret(SECRET, active_kid=1)
    old_token = old_ring.issue(SubjectKind.OPERATOR, 77, 0)
    rotated = QRKeyRing.from_secret(SECRET, active_kid=2, retired_kids=[1])
    assert rotated.kids == frozenset({1, 2})
    assert rotated.verify(old_token).kid == 1
    new_token = rotated.issue(SubjectKind.OPERATOR, 77, 0)
    assert rotated.verify(new_token).kid == 2
    assert new_token != old_token
    dropped = QRKeyRing.from_secret(SECRET, active_kid=2)
    with pytest.raises(ForgedQR) as info:
        dropped.verify(old_token)
    assert info.value.reason is QRRejection.UNKNOWN_KID
    with pytest.raises(ForgedQR) as info:
        old_ring.verify(new_token)
    assert info.value.reason is QRRejection.UNKNOWN_KID


def test_a_key_from_another_secret_under_the_same_kid_is_a_forgery(ring: QRKeyRing) -> None:
    forger = QRKeyRing.from_secret(OTHER_SECRET, active_kid=3)
    with pytest.raises(ForgedQR) as info:
        ring.verify(forger.issue(SubjectKind.OPERATOR, 1, 0))
    assert info.value.reason is QRRejection.BAD_SIGNATURE


def test_altering_any_bit_of_the_token_is_detected(ring: QRKeyRing) -> None:
    raw = unb64(ring.issue(SubjectKind.STALL, 654_321, 9))
    for index in range(len(raw)):
        for bit in range(8):
            altered = bytearray(raw)
            altered[index] ^= 1 << bit
            with pytest.raises(ForgedQR):
                ring.verify(b64(bytes(altered)))


def test_changing_the_subject_keeps_the_signature_useless(ring: QRKeyRing) -> None:
    raw = unb64(ring.issue(SubjectKind.OPERATOR, 1000, 1))
    # Re-encode the payload for another operator and graft the old signature on it.
    other = unb64(ring.issue(SubjectKind.OPERATOR, 1001, 1))
    grafted = other[:-64] + raw[-64:]
    with pytest.raises(ForgedQR) as info:
        ring.verify(b64(grafted))
    assert info.value.reason is QRRejection.BAD_SIGNATURE


def test_truncated_tokens_are_refused(ring: QRKeyRing) -> None:
    token = ring.issue(SubjectKind.INSTRUMENT, 31_337, 4)
    for length in range(len(token)):
        with pytest.raises(ForgedQR):
            ring.verify(token[:length])


def test_trailing_garbage_is_refused(ring: QRKeyRing) -> None:
    token = ring.issue(SubjectKind.INSTRUMENT, 31_337, 4)
    for suffix in ("A", "AA", "AAAA", "=", "==", " ", "\n", ".", token):
        with pytest.raises(ForgedQR):
            ring.verify(token + suffix)


def test_non_canonical_base64_spelling_of_a_genuine_token_is_refused(ring: QRKeyRing) -> None:
    token = ring.issue(SubjectKind.OPERATOR, 5, 0)
    # 70 bytes leave 4 spare bits in the last character; setting one decodes to the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    twin = token[:-1] + alphabet[last | 1]
    assert twin != token and unb64(twin) == unb64(token)
    with pytest.raises(ForgedQR) as info:
        ring.verify(twin)
    assert info.value.reason is QRRejection.MALFORMED


def test_padded_varint_is_refused_even_if_signed() -> None:
    key = Ed25519PrivateKey.generate()
    ring = QRKeyRing(active_kid=1, signing_key=key)
    # header, kid=1, subject id 5 spelled in two bytes (0x85 0x00), serial 0
    payload = bytes([0x11, 0x01, 0x85, 0x00, 0x00])
    token = b64(payload + key.sign(b"gongping/qr/v1\x00" + payload))
    with pytest.raises(ForgedQR) as info:
        ring.verify(token)
    assert info.value.reason is QRRejection.MALFORMED


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (0x21, QRRejection.UNSUPPORTED_VERSION),
        (0x01, QRRejection.UNSUPPORTED_VERSION),
        (0x14, QRRejection.MALFORMED),
    ],
)
def test_unknown_version_or_kind_is_refused(header: int, reason: QRRejection) -> None:
    key = Ed25519PrivateKey.generate()
    ring = QRKeyRing(active_kid=1, signing_key=key)
    payload = bytes([header, 0x01, 0x05, 0x00])
    token = b64(payload + key.sign(b"gongping/qr/v1\x00" + payload))
    with pytest.raises(ForgedQR) as info:
        ring.verify(token)
    assert info.value.reason is reason


def test_a_signature_made_without_the_domain_prefix_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    ring = QRKeyRing(active_kid=1, signing_key=key)
    payload = bytes([0x11, 0x01, 0x05, 0x00])
    with pytest.raises(ForgedQR) as info:
        ring.verify(b64(payload + key.sign(payload)))
    assert info.value.reason is QRRejection.BAD_SIGNATURE


@pytest.mark.parametrize(
    "junk",
    [
        "",
        "A",
        "====",
        "not a token",
        "../../etc/passwd",
        "\x00" * 94,
        "é" * 94,
        "A" * 10_000,
        "A" * 91,
        "_" * 94,
    ],
)
def test_junk_strings_are_forged(ring: QRKeyRing, junk: str) -> None:
    with pytest.raises(ForgedQR):
        ring.verify(junk)


@pytest.mark.parametrize("junk", [None, 12, 3.5, ["x"], b"\xff\xfe"])
def test_junk_of_other_types_is_forged_too(ring: QRKeyRing, junk: object) -> None:
    with pytest.raises(ForgedQR):
        ring.verify(junk)  # type: ignore[arg-type]


def test_bytes_tokens_are_accepted(ring: QRKeyRing) -> None:
    token = ring.issue(SubjectKind.STALL, 8, 1)
    assert ring.verify(token.encode()).subject_id == 8


def test_forged_qr_messages() -> None:
    err = ForgedQR(QRRejection.BAD_SIGNATURE)
    assert isinstance(err, ValueError)
    assert err.message_zh == "二维码无效或系伪造"
    assert "bad_signature" in str(err)


@pytest.mark.parametrize(
    ("kind", "subject_id", "serial"),
    [
        ("x", 1, 0),
        (SubjectKind.OPERATOR, 0, 0),
        (SubjectKind.OPERATOR, -1, 0),
        (SubjectKind.OPERATOR, MAX_SUBJECT_ID + 1, 0),
        (SubjectKind.OPERATOR, 1, -1),
        (SubjectKind.OPERATOR, 1, MAX_SERIAL + 1),
        (SubjectKind.OPERATOR, True, 0),
        (SubjectKind.OPERATOR, 1.0, 0),
    ],
)
def test_issue_rejects_bad_arguments(ring: QRKeyRing, kind: str, subject_id: int, serial: int) -> None:
    with pytest.raises(ValueError):
        ring.issue(kind, subject_id, serial)


def test_verify_only_ring_cannot_issue() -> None:
    signer = QRKeyRing.from_secret(SECRET, active_kid=5)
    verifier = QRKeyRing.from_pem(
        active_kid=None, signing_key_pem=None, verification_key_pems={5: signer.public_key_pem(5)}
    )
    assert verifier.active_kid is None
    assert verifier.verify(signer.issue(SubjectKind.OPERATOR, 10, 0)).kid == 5
    with pytest.raises(RuntimeError):
        verifier.issue(SubjectKind.OPERATOR, 10, 0)


def _pem_private(key: Ed25519PrivateKey, password: bytes | None = None) -> bytes:
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def test_keys_from_pem_files(tmp_path: Path) -> None:
    old_key, new_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    old_token = QRKeyRing(active_kid=1, signing_key=old_key).issue(SubjectKind.STALL, 99, 0)
    (tmp_path / "qr-2.pem").write_bytes(_pem_private(new_key, b"pw"))
    (tmp_path / "qr-1.pub.pem").write_bytes(
        old_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    ring = QRKeyRing.from_pem_files(
        active_kid=2,
        signing_key_file=tmp_path / "qr-2.pem",
        verification_key_files={1: tmp_path / "qr-1.pub.pem"},
        password=b"pw",
    )
    assert ring.kids == frozenset({1, 2})
    assert ring.verify(old_token).subject_id == 99
    assert ring.verify(ring.issue(SubjectKind.STALL, 99, 1)) == QRSubject(SubjectKind.STALL, 99, 1, 2)


def test_pem_loaders_refuse_other_key_types() -> None:
    ec = generate_private_key(SECP256R1())
    ec_private = ec.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ec_public = ec.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_signing_key_pem(ec_private)
    with pytest.raises(ValueError, match="Ed25519"):
        load_verification_key_pem(ec_public)


def test_key_ring_construction_errors() -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(ValueError):
        QRKeyRing(active_kid=1, signing_key=None)
    with pytest.raises(ValueError):
        QRKeyRing(active_kid=None, signing_key=key)
    with pytest.raises(ValueError):
        QRKeyRing(active_kid=None, signing_key=None)
    with pytest.raises(ValueError):
        QRKeyRing(
            active_kid=1, signing_key=key, verification_keys={1: Ed25519PrivateKey.generate().public_key()}
        )
    with pytest.raises(ValueError):
        QRKeyRing(active_kid=70_000, signing_key=key)
    # The same key listed again under the active kid is fine.
    assert QRKeyRing(active_kid=1, signing_key=key, verification_keys={1: key.public_key()}).kids == {1}


def test_short_secret_and_bad_kid_are_refused() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        derive_signing_key("short", 1)
    with pytest.raises(ValueError):
        derive_signing_key(SECRET, -1)
    with pytest.raises(ValueError):
        derive_signing_key(SECRET, 65_536)


# --- properties ---------------------------------------------------------------------------------------


@given(
    st.sampled_from(list(SubjectKind)),
    st.integers(min_value=1, max_value=MAX_SUBJECT_ID),
    st.integers(min_value=0, max_value=MAX_SERIAL),
)
def test_every_issued_token_verifies_to_its_subject(kind: SubjectKind, subject_id: int, serial: int) -> None:
    ring = QRKeyRing.from_secret(SECRET, active_kid=3)
    token = ring.issue(kind, subject_id, serial)
    assert len(token) <= 110
    assert ring.verify(token) == QRSubject(kind, subject_id, serial, 3)


@settings(max_examples=500)
@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_forged_qr(text: str) -> None:
    ring = QRKeyRing.from_secret(SECRET, active_kid=3)
    with pytest.raises(ForgedQR):
        ring.verify(text)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_forged_qr(data: bytes) -> None:
    ring = QRKeyRing.from_secret(SECRET, active_kid=3)
    with pytest.raises(ForgedQR):
        ring.verify(data)
    with pytest.raises(ForgedQR):
        ring.verify(b64(data))


@settings(max_examples=300)
@given(st.data())
def test_random_edits_of_a_genuine_token_raise_only_forged_qr(data: st.DataObject) -> None:
    ring = QRKeyRing.from_secret(SECRET, active_kid=3)
    token = ring.issue(SubjectKind.INSTRUMENT, 4_242, 7)
    index = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    replacement = data.draw(st.text(min_size=0, max_size=3))
    edited = token[:index] + replacement + token[index + 1 :]
    if edited == token:
        return
    with pytest.raises(ForgedQR):
        ring.verify(edited)
