"""Ed25519 acceptance rule (exchange.core.keys) against Wycheproof, plus key parsing.

The vectors are C2SP/wycheproof ``testvectors_v1/ed25519_test.json`` (Apache-2.0),
vendored with its licence in ``conformance/third_party/ed25519-wycheproof``.

Wycheproof results are ``valid`` (must verify), ``invalid`` (must be rejected) and,
in some files, ``acceptable`` (an implementation may go either way; for EdDSA these
were historically small-order keys/R and non-canonical encodings). This version of
the file has no ``acceptable`` cases; ``test_vector_file_is_complete`` pins that, so
an updated file that adds some forces a decision here. Trustwire's rule is "exactly
what libsodium accepts", and libsodium (>= 1.0.16, as bundled by PyNaCl) is the strict
end of the spectrum: it rejects small-order and non-canonical public keys and R, and
S >= L. So an ``acceptable`` vector is expected to be *rejected*, and
``test_wycheproof_vector`` asserts exactly that for any that appear.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from exchange.core.errors import ForgedSignature, InvalidValue
from exchange.core.keys import Signer, key_id, parse_key_id, parse_public_key, verify_signature

VECTOR_FILE = Path(__file__).resolve().parents[2] / "conformance" / "third_party" / "ed25519-wycheproof" / "ed25519_test.json"


def _load() -> dict[str, Any]:
    # a missing file must fail the run, not skip it
    return json.loads(VECTOR_FILE.read_text())  # type: ignore[no-any-return]


DATA = _load()
CASES = [(group["publicKey"]["pk"], test) for group in DATA["testGroups"] for test in group["tests"]]


def test_vector_file_is_complete() -> None:
    assert DATA["algorithm"] == "EDDSA"
    assert len(CASES) == DATA["numberOfTests"] == 151
    assert len({t["tcId"] for _, t in CASES}) == len(CASES)
    results = Counter(t["result"] for _, t in CASES)
    assert results == {"valid": 88, "invalid": 63}, results  # no "acceptable" in this version
    assert all(g["publicKey"]["curve"] == "edwards25519" for g in DATA["testGroups"])


@pytest.mark.parametrize(("pk_hex", "case"), CASES, ids=[f"tc{t['tcId']}" for _, t in CASES])
def test_wycheproof_vector(pk_hex: str, case: dict[str, Any]) -> None:
    pk, msg, sig = bytes.fromhex(pk_hex), bytes.fromhex(case["msg"]), bytes.fromhex(case["sig"])
    if case["result"] == "valid":
        verify_signature(pk, msg, sig)
    else:
        # "invalid", and "acceptable" too: libsodium takes the strict side (see module doc)
        assert case["result"] in ("invalid", "acceptable")
        with pytest.raises(ForgedSignature):
            verify_signature(pk, msg, sig)


def test_every_wycheproof_key_with_a_valid_signature_is_an_acceptable_member_key() -> None:
    keys = {pk for pk, t in CASES if t["result"] == "valid"}
    assert keys
    for pk in keys:
        assert parse_public_key(bytes.fromhex(pk)) == bytes.fromhex(pk)


# -- a small, independent model of edwards25519 to derive the bad keys -------------------

P = 2**255 - 19
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1)
Point = tuple[int, int]


def _sqrt(a: int) -> int | None:
    a %= P
    x = pow(a, (P + 3) // 8, P)
    if (x * x - a) % P:
        x = x * SQRT_M1 % P
    return x if (x * x - a) % P == 0 else None


def _add(p1: Point, p2: Point) -> Point:
    (x1, y1), (x2, y2) = p1, p2
    t = D * x1 * x2 * y1 * y2 % P
    return (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P, (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P


def _mul(k: int, pt: Point) -> Point:
    out = IDENTITY
    while k:
        if k & 1:
            out = _add(out, pt)
        pt = _add(pt, pt)
        k >>= 1
    return out


def _on_curve(pt: Point) -> bool:
    x, y = pt
    return (-x * x + y * y - 1 - D * x * x * y * y) % P == 0


def _encode(pt: Point) -> bytes:
    x, y = pt
    return (y | ((x & 1) << 255)).to_bytes(32, "little")


def _decode(raw: bytes) -> Point:
    n = int.from_bytes(raw, "little")
    y, sign = n & ((1 << 255) - 1), n >> 255
    x = _sqrt((y * y - 1) * pow(D * y * y + 1, P - 2, P))
    assert x is not None and y < P
    if x & 1 != sign:
        x = P - x
    return x, y


def _order(pt: Point) -> int:
    return next(k for k in (1, 2, 4, 8) if _mul(k, pt) == IDENTITY)


def small_order_points() -> list[Point]:
    """All 8 points of the torsion subgroup E[8], derived from the curve equation.

    Order 1: (0, 1); order 2: (0, -1); order 4: (+-sqrt(-1), 0). A point of order 8
    doubles to an order-4 point, so y(2P) = 0, i.e. x^2 = -y^2; on the curve that gives
    d*y^4 + 2*y^2 - 1 = 0, so y^2 = (-1 +- sqrt(1 + d)) / d.
    """
    points = {IDENTITY, (0, P - 1), (SQRT_M1, 0), (P - SQRT_M1, 0)}
    root = _sqrt(1 + D)
    assert root is not None
    for r in (root, P - root):
        y = _sqrt((r - 1) * pow(D, P - 2, P))
        if y is None:
            continue
        for yy in (y, P - y):
            x = _sqrt(-yy * yy)
            assert x is not None
            points |= {(x, yy), (P - x, yy)}
    return sorted(points)


SMALL_ORDER = small_order_points()

# The same list as libsodium's blocklist and the Ed25519 literature.
KNOWN_SMALL_ORDER_ENCODINGS = {
    "0100000000000000000000000000000000000000000000000000000000000000",  # identity (order 1)
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",  # (0, -1) (order 2)
    "0000000000000000000000000000000000000000000000000000000000000000",  # (sqrt(-1), 0) (order 4)
    "0000000000000000000000000000000000000000000000000000000000000080",  # (-sqrt(-1), 0) (order 4)
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",  # order 8
    "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",  # order 8
    "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",  # order 8
}


def test_derived_small_order_points() -> None:
    assert len(SMALL_ORDER) == 8
    assert all(_on_curve(p) for p in SMALL_ORDER)
    assert Counter(_order(p) for p in SMALL_ORDER) == {1: 1, 2: 1, 4: 2, 8: 4}
    assert {_encode(p).hex() for p in SMALL_ORDER} == KNOWN_SMALL_ORDER_ENCODINGS


@pytest.mark.parametrize("point", SMALL_ORDER, ids=lambda p: _encode(p).hex()[:8] + f"-order{_order(p)}")
def test_small_order_keys_are_refused(point: Point) -> None:
    with pytest.raises(InvalidValue):
        parse_public_key(_encode(point))


def test_mixed_order_keys_are_refused() -> None:
    """A good key plus a torsion point is on the curve but not in the prime-order subgroup."""
    good = _decode(Signer.from_seed(b"\x07" * 32).public_key)
    assert parse_public_key(_encode(good))
    for torsion in SMALL_ORDER:
        if torsion == IDENTITY:
            continue
        mixed = _add(good, torsion)
        assert _on_curve(mixed)
        with pytest.raises(InvalidValue):
            parse_public_key(_encode(mixed))


@pytest.mark.parametrize("k", range(19))
@pytest.mark.parametrize("sign", [0, 1])
def test_non_canonical_encodings_are_refused(k: int, sign: int) -> None:
    """y = p + k (k < 19) still fits in 255 bits but is not reduced mod p."""
    raw = ((P + k) | (sign << 255)).to_bytes(32, "little")
    with pytest.raises(InvalidValue):
        parse_public_key(raw)


def test_x_zero_with_sign_bit_is_refused() -> None:
    # (0, 1) and (0, -1) have x = 0; setting the sign bit is a second encoding
    for pt in ((0, 1), (0, P - 1)):
        raw = bytearray(_encode(pt))
        raw[31] |= 0x80
        with pytest.raises(InvalidValue):
            parse_public_key(bytes(raw))


def test_points_off_the_curve_are_refused() -> None:
    off = [y for y in range(2, 40) if _sqrt((y * y - 1) * pow(D * y * y + 1, P - 2, P)) is None]
    assert off
    for y in off:
        with pytest.raises(InvalidValue):
            parse_public_key(y.to_bytes(32, "little"))


@pytest.mark.parametrize("size", [0, 1, 31, 33, 64])
def test_wrong_length_keys_are_refused(size: int) -> None:
    with pytest.raises(InvalidValue):
        parse_public_key(Signer.from_seed(b"\x01" * 32).public_key.ljust(64, b"\x00")[:size])


@pytest.mark.parametrize("seed", [b"\x00" * 32, b"\x01" * 32, b"\xff" * 32, hashlib.sha256(b"member").digest()])
def test_normal_keys_are_accepted(seed: bytes) -> None:
    pk = Signer.from_seed(seed).public_key
    assert parse_public_key(pk) == pk


# -- signatures and key ids --------------------------------------------------------------


def test_sign_verify_round_trip_and_rejections() -> None:
    signer = Signer.from_seed(b"\x02" * 32)
    other = Signer.from_seed(b"\x03" * 32)
    sig = signer.sign(b"message")
    verify_signature(signer.public_key, b"message", sig)
    with pytest.raises(ForgedSignature):
        verify_signature(signer.public_key, b"messagE", sig)
    with pytest.raises(ForgedSignature):
        verify_signature(other.public_key, b"message", sig)
    for bad_sig in (sig[:-1], sig + b"\x00", b"", bytes(64)):
        with pytest.raises(ForgedSignature):
            verify_signature(signer.public_key, b"message", bad_sig)
    for bad_key in (signer.public_key[:31], signer.public_key + b"\x00", b""):
        with pytest.raises(ForgedSignature):
            verify_signature(bad_key, b"message", sig)


def test_identity_key_with_trivial_signature_is_rejected() -> None:
    """With A = R = identity and S = 0, [S]B = R + [k]A holds for every message; a lax
    verifier accepts this "signature" of anything. libsodium refuses small-order A and R."""
    identity = _encode(IDENTITY)
    for message in (b"", b"anything at all"):
        with pytest.raises(ForgedSignature):
            verify_signature(identity, message, identity + bytes(32))


def test_key_id_is_sha256_hex_of_the_raw_key() -> None:
    signer = Signer.from_seed(b"\x04" * 32)
    assert key_id(signer.public_key) == hashlib.sha256(signer.public_key).hexdigest()
    assert signer.keyid == key_id(signer.public_key)
    assert parse_key_id(signer.keyid) == signer.keyid
    for bad in (signer.keyid.upper(), signer.keyid[:-1], signer.keyid + "0", signer.keyid + "\n", "", "g" * 64):
        with pytest.raises(InvalidValue):
            parse_key_id(bad)


def test_signer_repr_hides_the_seed() -> None:
    signer = Signer.from_seed(b"\x05" * 32)
    assert signer.seed.hex() not in repr(signer)
    with pytest.raises(InvalidValue):
        Signer.from_seed(b"\x05" * 31)
