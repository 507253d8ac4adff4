"""Per-call authentication v3 (exchange.core.callauth) with an injected clock: no sleeps.

A signature that does not verify (tampered origin, method, principal, key id,
timestamp, nonce or request body) raises BadCallSignature, the call-specific form of
a forged signature; a principal using a key that is not its own is refused by
``authorize``. The checks run in the order PROTOCOL.md §4 fixes.
"""

from __future__ import annotations

import base64
import hashlib

import pytest

from exchange.core.callauth import (
    HEADERS,
    CallAuthenticator,
    CallCredentials,
    NonceCache,
    body_digest,
    call_message,
    origin_of_log_key,
    sign_call,
)
from exchange.core.errors import (
    AuthenticationError,
    BadCallSignature,
    ExpiredCall,
    MissingCredentials,
    ReplayedCall,
    ResourceExhausted,
    UnknownKey,
    WrongMember,
)
from exchange.core.keys import KeyId, Signer

ALICE = Signer.from_seed(hashlib.sha256(b"trustwire-test-INSECURE:alice").digest())
BOB = Signer.from_seed(hashlib.sha256(b"trustwire-test-INSECURE:bob").digest())
KEYS = {ALICE.keyid: ALICE.public_key, BOB.keyid: BOB.public_key}
OWNERS = {ALICE.keyid: "alice", BOB.keyid: "bob"}
METHOD = "/trustwire.v1.ExchangeService/Publish"
OTHER_METHOD = "/trustwire.v1.ExchangeService/Subscribe"
ORIGIN = "test.trustwire.invalid/log"
T0 = 1_700_000_000_000
WINDOW = 120_000


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def key_for(keyid: KeyId) -> bytes:
    if keyid not in KEYS:
        raise UnknownKey("no such key")
    return KEYS[keyid]


def authorize(principal: str, keyid: KeyId) -> None:
    if OWNERS[keyid] != principal:
        raise WrongMember("key belongs to another member")


def make_auth(clock: Clock, window: int = WINDOW) -> CallAuthenticator:
    return CallAuthenticator(ORIGIN, key_for, authorize, window_ms=window, clock_ms=clock)


def metadata(
    signer: Signer = ALICE, principal: str = "alice", method: str = METHOD, ts: int = T0, request: bytes = b"",
    origin: str = ORIGIN,
) -> dict[str, str]:
    return dict(sign_call(signer, principal, method, origin, request, now_ms=ts))


def manual(signer: Signer, principal: str, method: str, ts: int, nonce: str, request: bytes = b"") -> dict[str, str]:
    sig = signer.sign(call_message(ORIGIN, method, principal, signer.keyid, ts, nonce, body_digest(request)))
    return {
        "tw-principal": principal,
        "tw-keyid": signer.keyid,
        "tw-timestamp": str(ts),
        "tw-nonce": nonce,
        "tw-signature": base64.b64encode(sig).decode(),
    }


# -- accepting ---------------------------------------------------------------------------


def test_signed_call_is_accepted() -> None:
    auth = make_auth(Clock())
    creds = auth.authenticate(METHOD, metadata())
    assert creds == CallCredentials("alice", ALICE.keyid)
    assert auth.authenticate(METHOD, metadata(BOB, "bob")) == CallCredentials("bob", BOB.keyid)


def test_sign_call_metadata_shape() -> None:
    a, b = metadata(), metadata()
    assert set(a) == set(HEADERS)
    assert a["tw-principal"] == "alice" and a["tw-keyid"] == ALICE.keyid and a["tw-timestamp"] == str(T0)
    assert len(a["tw-nonce"]) == 32 and all(c in "0123456789abcdef" for c in a["tw-nonce"])
    assert a["tw-nonce"] != b["tw-nonce"]
    assert len(base64.b64decode(a["tw-signature"])) == 64


def test_call_message_is_line_oriented_and_versioned() -> None:
    digest = hashlib.sha256(b"req").hexdigest()
    assert body_digest(b"req") == digest
    assert call_message(ORIGIN, METHOD, "alice", "ab" * 32, 5, "00" * 16, digest) == (
        f"trustwire-call-v3\n{ORIGIN}\n{METHOD}\nalice\n{'ab' * 32}\n5\n{'00' * 16}\n{digest}\n".encode()
    )


def test_call_for_another_exchange_is_refused() -> None:
    """A call signed for one exchange is worthless on another (the origin line)."""
    auth = make_auth(Clock())
    with pytest.raises(BadCallSignature, match="this exchange is test.trustwire.invalid/log"):
        auth.authenticate(METHOD, metadata(origin="other.trustwire.invalid/log"))
    auth.authenticate(METHOD, metadata())


def test_origin_is_the_log_key_name() -> None:
    assert origin_of_log_key("example.org/trustwire+0a1b2c3d+Ab+Cd/Ef==") == "example.org/trustwire"
    with pytest.raises(ValueError):
        origin_of_log_key("no-plus-signs")


def test_checks_run_in_protocol_order() -> None:
    """Timestamp before key id, key id before signature; none of them reads the body."""
    stranger = Signer.from_seed(b"\x07" * 32)
    auth = make_auth(Clock())
    with pytest.raises(ExpiredCall):  # step 2 before step 3
        auth.precheck(metadata(stranger, "carol", ts=T0 - 2 * WINDOW))
    with pytest.raises(UnknownKey):  # step 3 before step 4 (the signature is not even looked at)
        auth.precheck(metadata(stranger, "carol") | {"tw-signature": base64.b64encode(b"\x00" * 64).decode()})
    headers, key = auth.precheck(metadata(request=b"body"))
    assert key == ALICE.public_key and headers.principal == "alice"
    assert auth.verify(METHOD, headers, key, b"body") == CallCredentials("alice", ALICE.keyid)


def test_request_body_is_bound() -> None:
    auth = make_auth(Clock())
    auth.authenticate(METHOD, metadata(request=b"\x0a\x02hi"), body=b"\x0a\x02hi")
    md = metadata(request=b"\x0a\x02hi")
    with pytest.raises(BadCallSignature):
        auth.authenticate(METHOD, md, body=b"\x0a\x02ho")
    with pytest.raises(BadCallSignature):
        auth.authenticate(METHOD, md)  # empty body
    auth.authenticate(METHOD, md, body=b"\x0a\x02hi")  # the failures burned nothing


def test_many_fresh_calls_are_accepted() -> None:
    auth = make_auth(Clock())
    for _ in range(20):
        auth.authenticate(METHOD, metadata())


# -- replay and time ---------------------------------------------------------------------


def test_replay_of_identical_metadata_is_refused() -> None:
    clock = Clock()
    auth = make_auth(clock)
    md = metadata()
    auth.authenticate(METHOD, md)
    with pytest.raises(ReplayedCall):
        auth.authenticate(METHOD, md)
    clock.now = T0 + WINDOW  # still inside the window
    with pytest.raises(ReplayedCall):
        auth.authenticate(METHOD, dict(md))


def test_same_nonce_other_principal_is_not_a_replay() -> None:
    auth = make_auth(Clock())
    nonce = "ab" * 16
    auth.authenticate(METHOD, manual(ALICE, "alice", METHOD, T0, nonce))
    auth.authenticate(METHOD, manual(BOB, "bob", METHOD, T0, nonce))
    with pytest.raises(ReplayedCall):
        auth.authenticate(OTHER_METHOD, manual(ALICE, "alice", OTHER_METHOD, T0, nonce))


@pytest.mark.parametrize("offset", [WINDOW + 1, -(WINDOW + 1), 10 * WINDOW, -T0])
def test_timestamp_outside_window_is_expired(offset: int) -> None:
    auth = make_auth(Clock())
    with pytest.raises(ExpiredCall):
        auth.authenticate(METHOD, metadata(ts=T0 + offset))


@pytest.mark.parametrize("offset", [WINDOW, -WINDOW, 0, 1, -1])
def test_timestamp_at_window_edge_is_accepted(offset: int) -> None:
    auth = make_auth(Clock())
    auth.authenticate(METHOD, metadata(ts=T0 + offset))


def test_call_expires_as_the_clock_moves() -> None:
    clock = Clock()
    auth = make_auth(clock)
    md = metadata()
    clock.now = T0 + WINDOW + 1
    with pytest.raises(ExpiredCall):
        auth.authenticate(METHOD, md)


def test_refused_calls_do_not_burn_their_nonce() -> None:
    """Nonces are remembered only for validly signed, timely calls."""
    auth = make_auth(Clock())
    nonce = "cd" * 16
    forged = manual(ALICE, "alice", METHOD, T0, nonce)
    forged["tw-principal"] = "bob"
    with pytest.raises(BadCallSignature):
        auth.authenticate(METHOD, forged)
    with pytest.raises(ExpiredCall):
        auth.authenticate(METHOD, manual(ALICE, "alice", METHOD, T0 - 2 * WINDOW, nonce))
    auth.authenticate(METHOD, manual(ALICE, "alice", METHOD, T0, nonce))
    with pytest.raises(ReplayedCall):
        auth.authenticate(METHOD, manual(ALICE, "alice", METHOD, T0 + 1, nonce))


# -- tampering ---------------------------------------------------------------------------


def test_tampered_method_is_forged() -> None:
    auth = make_auth(Clock())
    with pytest.raises(BadCallSignature):
        auth.authenticate(OTHER_METHOD, metadata())


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("tw-principal", "bob"),
        ("tw-nonce", "ff" * 16),
        ("tw-timestamp", str(T0 + 1)),
        ("tw-keyid", BOB.keyid),
    ],
)
def test_tampered_metadata_is_forged(header: str, value: str) -> None:
    auth = make_auth(Clock())
    md = metadata()
    md[header] = value
    with pytest.raises(BadCallSignature):
        auth.authenticate(METHOD, md)


def test_tampered_signature_is_forged() -> None:
    auth = make_auth(Clock())
    md = metadata()
    sig = bytearray(base64.b64decode(md["tw-signature"]))
    for i in (0, 31, 32, 63):
        flipped = bytearray(sig)
        flipped[i] ^= 0x01
        with pytest.raises(BadCallSignature):
            auth.authenticate(METHOD, md | {"tw-signature": base64.b64encode(bytes(flipped)).decode()})
    for wrong_length in (bytes(sig[:-1]), bytes(sig) + b"\x00", b"\x00"):
        with pytest.raises(MissingCredentials):  # step 1: not a 64-byte signature at all
            auth.authenticate(METHOD, md | {"tw-signature": base64.b64encode(wrong_length).decode()})
    auth.authenticate(METHOD, md)  # the original still works: failures burned nothing


def test_signature_by_another_key_is_forged() -> None:
    auth = make_auth(Clock())
    md = metadata(BOB, "alice")  # bob signs, claiming alice and carrying bob's keyid
    md["tw-keyid"] = ALICE.keyid
    with pytest.raises(BadCallSignature):
        auth.authenticate(METHOD, md)


def test_principal_must_own_the_key() -> None:
    auth = make_auth(Clock())
    with pytest.raises(WrongMember):
        auth.authenticate(METHOD, metadata(BOB, "alice"))  # validly signed by bob, as "alice"
    stranger = Signer.from_seed(b"\x09" * 32)
    with pytest.raises(UnknownKey):
        auth.authenticate(METHOD, metadata(stranger, "carol"))


def test_bad_call_signature_is_an_authentication_error() -> None:
    assert issubclass(BadCallSignature, AuthenticationError)
    assert BadCallSignature.status == "UNAUTHENTICATED"


# -- missing and malformed credentials --------------------------------------------------


@pytest.mark.parametrize("header", HEADERS)
def test_missing_header(header: str) -> None:
    auth = make_auth(Clock())
    md = metadata()
    del md[header]
    with pytest.raises(MissingCredentials):
        auth.authenticate(METHOD, md)
    with pytest.raises(MissingCredentials):
        auth.authenticate(METHOD, md | {header: ""})


def test_no_metadata_at_all() -> None:
    with pytest.raises(MissingCredentials):
        make_auth(Clock()).authenticate(METHOD, {})


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("tw-principal", "Alice"),
        ("tw-principal", "a"),
        ("tw-principal", "alice\n"),
        ("tw-principal", "-alice"),
        ("tw-keyid", ALICE.keyid.upper()),
        ("tw-keyid", ALICE.keyid[:-1]),
        ("tw-keyid", ALICE.keyid + "\n"),
        ("tw-nonce", "ab" * 15),
        ("tw-nonce", "AB" * 16),
        ("tw-nonce", "ab" * 16 + "\n"),
        ("tw-timestamp", "-5"),
        ("tw-timestamp", "1e12"),
        ("tw-timestamp", " 1700000000000"),
        ("tw-timestamp", "1700000000000\n"),
        ("tw-timestamp", "\u00b2"),  # str.isdigit() is true, int() fails
        ("tw-timestamp", "\u0661\u0667\u0660\u0660"),  # Arabic-Indic digits: not ASCII
        ("tw-timestamp", "9" * 5000),  # int() refuses more than 4300 digits
        ("tw-signature", "not base64!"),
        ("tw-signature", "YWJ"),  # bad padding
    ],
)
def test_malformed_credentials(header: str, value: str) -> None:
    auth = make_auth(Clock())
    with pytest.raises(MissingCredentials):
        auth.authenticate(METHOD, metadata() | {header: value})


# -- the nonce cache ---------------------------------------------------------------------


def test_nonce_cache_evicts_after_twice_the_window() -> None:
    cache = NonceCache(window_ms=1000)
    cache.remember("alice", "n1", timestamp_ms=0, now_ms=0)
    cache.remember("alice", "n2", timestamp_ms=500, now_ms=500)
    with pytest.raises(ReplayedCall):
        cache.remember("alice", "n1", 0, now_ms=2000)  # exactly 2x window: still remembered
    cache.remember("alice", "n1", 0, now_ms=2001)  # forgotten: accepted again
    with pytest.raises(ReplayedCall):
        cache.remember("alice", "n2", 500, now_ms=2500)
    cache.remember("alice", "n2", 500, now_ms=2501)


def test_authenticator_forgets_nonces_only_once_the_window_refuses_the_call() -> None:
    """After eviction, the old call is still refused, by the timestamp window."""
    clock = Clock()
    auth = make_auth(clock)
    md = metadata()
    auth.authenticate(METHOD, md)
    clock.now = T0 + WINDOW  # latest moment the call is timely: the nonce must still be known
    with pytest.raises(ReplayedCall):
        auth.authenticate(METHOD, md)
    clock.now = T0 + 2 * WINDOW + 1
    auth.authenticate(METHOD, metadata(ts=clock.now))  # triggers eviction of the old nonce
    with pytest.raises(ExpiredCall):
        auth.authenticate(METHOD, md)


def test_nonce_cache_is_bounded() -> None:
    cache = NonceCache(window_ms=1000, max_entries=3)
    for i in range(3):
        cache.remember("alice", f"n{i}", 0, now_ms=i)
    with pytest.raises(ResourceExhausted):
        cache.remember("alice", "n3", 0, now_ms=10)
    with pytest.raises(ReplayedCall):
        cache.remember("alice", "n0", 0, now_ms=10)  # a replay is still reported as such
    cache.remember("alice", "n3", 0, now_ms=2001)  # n0 evicted (seen at 0 < 2001 - 2000)
    with pytest.raises(ResourceExhausted):
        cache.remember("alice", "n4", 0, now_ms=2001)
    cache.remember("alice", "n4", 0, now_ms=5000)  # all old ones evicted


def test_nonce_cache_eviction_keeps_recent_entries() -> None:
    cache = NonceCache(window_ms=100)
    for t in range(0, 1000, 10):
        cache.remember("alice", f"n{t}", t, now_ms=t)
    # at now=1000 the horizon is 800: everything seen at >= 800 is still a replay
    for t in range(800, 1000, 10):
        with pytest.raises(ReplayedCall):
            cache.remember("alice", f"n{t}", t, now_ms=1000)
    for t in range(0, 800, 10):
        cache.remember("alice", f"n{t}", t, now_ms=1000)


def test_protocol_md_example_vector() -> None:
    """The worked example of PROTOCOL.md §4, byte for byte."""
    signer = Signer.from_seed(bytes(range(32)))
    assert signer.keyid == "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c"
    body = bytes.fromhex("0805100a")
    message = call_message(
        "example.org/trustwire", "/trustwire.v1.ExchangeService/GetEntries", "acme", signer.keyid,
        1767225600000, "00112233445566778899aabbccddeeff", body_digest(body),
    )
    assert len(message) == 263 and message.endswith(b"a0cd6ab88e4e300f522609baf3f99e074d48a4a73dea8eff10e4cbed08f46673\n")
    assert base64.b64encode(signer.sign(message)).decode() == (
        "Ze3bV5sC5rseFnBymGPFnF4ZjtqkmWTWlJvvDzcz/Ekx8tYUiOtb4WaJGUY95AM2mJTn2T0EHKeoMENwbPb6Aw=="
    )
