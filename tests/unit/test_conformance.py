"""The Python implementation against conformance/vectors/ (PROTOCOL.md).

The vectors are generated from this implementation (``python -m conformance.generate``),
so the first test pins them: a change in behaviour shows up as a vector diff to
review, not as silent drift. The other tests re-check each file's cases directly.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from conformance.generate import main as generate
from conformance.wire import field_bytes, field_string
from exchange.core import callauth, merkle, signals
from exchange.core import note as notes
from exchange.core.dsse import Envelope
from exchange.core.entries import decode_entry, validate_entry
from exchange.core.errors import ForgedSignature, TrustwireError
from exchange.core.keys import verify_signature
from exchange.core.records import Record
from tests.conftest import REPO

VECTORS = REPO / "conformance" / "vectors"


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((VECTORS / f"{name}.json").read_text(encoding="utf-8"))
    return doc


def reason(action: Any) -> str | None:
    try:
        action()
    except TrustwireError as exc:
        return str(getattr(exc, "cause", None) or exc.reason)
    return None


def test_vectors_are_what_the_implementation_says() -> None:
    assert generate(["--check"]) == 0


def test_every_vector_file_names_its_protocol_section() -> None:
    protocol = (REPO / "PROTOCOL.md").read_text(encoding="utf-8")
    for path in sorted(VECTORS.glob("*.json")):
        doc = json.loads(path.read_text(encoding="utf-8"))
        for section in doc["section"].split(" / "):
            assert f"## {section}" in protocol, (path.name, section)


_HEADER_RULES = {
    "tw-principal": re.compile(r"[a-z0-9][a-z0-9-]{1,62}"),
    "tw-keyid": re.compile(r"[0-9a-f]{64}"),
    "tw-timestamp": re.compile(r"[0-9]{1,15}"),
    "tw-nonce": re.compile(r"[0-9a-f]{32}"),
}


def _call_reason(case: dict[str, Any], public_key: bytes) -> str | None:
    """PROTOCOL.md §4 steps 1 and 4, as written."""
    h = case["headers"]
    if not all(rule.fullmatch(h[name]) for name, rule in _HEADER_RULES.items()):
        return "missing-credentials"
    try:
        sig = base64.b64decode(h["tw-signature"], validate=True)
    except binascii.Error:
        return "missing-credentials"
    if len(sig) != 64:
        return "missing-credentials"
    body = bytes.fromhex(case["body"])
    message = "".join(f"{line}\n" for line in (
        "trustwire-call-v3", case["origin"], case["method"], h["tw-principal"], h["tw-keyid"],
        h["tw-timestamp"], h["tw-nonce"], hashlib.sha256(body).hexdigest())).encode()
    try:
        verify_signature(public_key, message, sig)
    except ForgedSignature:
        return "bad-call-signature"
    assert message.decode() == case["message"]
    return None


@pytest.mark.parametrize("case", load("callauth")["cases"], ids=lambda c: c["name"])
def test_call_auth_v3(case: dict[str, Any]) -> None:
    keys = load("callauth")["keys"]
    public_key = bytes.fromhex(keys["alice"]["public_key"])
    assert _call_reason(case, public_key) == (None if case["valid"] else case["reason"])


@pytest.mark.parametrize("case", load("envelopes")["cases"], ids=lambda c: c["name"])
def test_envelopes(case: dict[str, Any]) -> None:
    if "envelope" not in case:  # the oversized case is described, not embedded
        raw = field_bytes(1, bytes(64 * 1024)) + field_string(2, "application/vnd.trustwire.signal.v1+protobuf")
        assert reason(lambda: Envelope.decode(raw)) == case["reason"]
        return
    raw = bytes.fromhex(case["envelope"])
    got = reason(lambda: Envelope.decode(raw).verify(bytes.fromhex(case["public_key"])))
    assert got == (None if case["valid"] else case["reason"])


@pytest.mark.parametrize("case", load("entries")["cases"], ids=lambda c: c["name"])
def test_entries(case: dict[str, Any]) -> None:
    def check() -> None:
        kind, entry = decode_entry(case["payload_type"], bytes.fromhex(case["payload"]))
        validate_entry(kind, entry)
    assert reason(check) == (None if case["valid"] else case["reason"])


@pytest.mark.parametrize("case", load("records")["cases"], ids=lambda c: c["name"])
def test_records(case: dict[str, Any]) -> None:
    raw = bytes.fromhex(case["record"])
    assert reason(lambda: Record.decode(raw)) == (None if case["valid"] else case["reason"])
    if case["valid"]:
        assert merkle.leaf_hash(raw).hex() == case["leaf_hash"] == hashlib.sha256(b"\x00" + raw).hexdigest()


@pytest.mark.parametrize("case", load("normalization")["cases"], ids=lambda c: c["name"])
def test_normalization(case: dict[str, Any]) -> None:
    kind, rule = signals.signal_type(case["type"]), case["rule"]
    if case["valid"]:
        assert kind.normalize_under(case["input"], rule) == case["normalized"]
        assert reason(lambda: kind.check(case["normalized"], rule)) == case.get("signal_reason")
        if rule == signals.CURRENT_RULE:
            assert signals.normalize(case["type"], case["input"]) == case["normalized"]
    else:
        assert reason(lambda: signals.normalize(case["type"], case["input"])
                      if rule == signals.CURRENT_RULE else kind.normalize_under(case["input"], rule)) == case["reason"]


def test_merkle() -> None:
    doc = load("merkle")
    leaves = [bytes.fromhex(h) for h in doc["leaves"]]
    for size, root in doc["roots"].items():
        assert merkle.root_from_leaf_hashes(leaves[: int(size)]).hex() == root
    for c in doc["inclusion"] + doc["consistency"] + doc["batch"]:
        assert c["valid"] == c["valid_by_implementation"], c["name"]


@pytest.mark.parametrize("case", load("checkpoints")["cases"], ids=lambda c: c["name"])
def test_checkpoints(case: dict[str, Any]) -> None:
    doc = load("checkpoints")
    log = notes.NoteVerifier.from_string(doc["log_verifier_key"])
    witness = notes.CosignatureVerifier.from_string(doc["witness_verifier_key"])
    got = reason(lambda: notes.open_checkpoint(case["note"], [log], [witness], case["witness_quorum"]))
    assert (got is None) == case["valid"]


@pytest.mark.parametrize("case", load("callauth")["cases"], ids=lambda c: c["name"])
def test_call_auth_vectors_against_the_authenticator(case: dict[str, Any]) -> None:
    """The exchange's own CallAuthenticator on the v3 vectors (PROTOCOL.md §4).

    TEMPORARY: until the serving work lands call-auth v3 the authenticator speaks v2 and
    each case is reported as an expected failure; from then on they run for real.
    """
    if callauth.VERSION != "trustwire-call-v3":
        pytest.xfail("the exchange speaks trustwire-call-v2 until call-auth v3 lands")
    doc = load("callauth")
    alice = doc["keys"]["alice"]
    auth = callauth.CallAuthenticator(  # type: ignore[call-arg]
        case["origin"],  # the origin of the exchange the call reaches
        lambda keyid: bytes.fromhex(alice["public_key"]),
        lambda principal, keyid: None,
        window_ms=doc["window"]["replay_window_ms"],
        clock_ms=lambda: doc["window"]["clock_ms"],
    )
    got = reason(lambda: auth.authenticate(case["method"], case["headers"], bytes.fromhex(case["body"])))
    assert got == (None if case["valid"] else case["reason"])
