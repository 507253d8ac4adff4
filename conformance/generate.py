"""Generate conformance/vectors/*.json from the Python implementation.

    python -m conformance.generate            # rewrite the vectors
    python -m conformance.generate --check    # exit 1 if a vector file would change

Every expected answer is what the Python implementation says (decoders, verifiers,
normalizers, the key directory, the Merkle code); call authentication v3 is written
from PROTOCOL.md §4 directly. Keys are derived from fixed INSECURE seeds and Ed25519
signatures are deterministic, so the output is byte-stable. Each file cites the
PROTOCOL.md section it tests; every case has a ``name`` and, for an invalid case,
the ``reason`` a conforming implementation reports.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import sys
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from clients.accounts import normalize_identifier
from conformance.wire import field_bytes, field_string, field_varint, long_varint, tag, varint
from exchange.core import merkle, signals
from exchange.core import note as notes
from exchange.core.dsse import Envelope, pae, sign_envelope
from exchange.core.entries import EntryKind, decode_entry, encode_entry, ms_to_timestamp, validate_entry
from exchange.core.errors import InvalidValue, TrustwireError
from exchange.core.keydir import KeyDirectory
from exchange.core.keydir_commitment import commit as keydir_commit
from exchange.core.keys import Signer, key_id, parse_public_key, verify_signature
from exchange.core.records import Record, encode_record
from exchange.core.verify import EntryVerifier
from exchange.pb.trustwire.v1 import entries_pb2 as pb

OUT = Path(__file__).resolve().parent / "vectors"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, in ms
ORIGIN = "conformance.trustwire.invalid/log"
WITNESS_NAME = "conformance.trustwire.invalid/witness"


def signer(name: str) -> Signer:
    """Deterministic INSECURE keys: never use them outside tests."""
    return Signer.from_seed(hashlib.sha256(f"trustwire-conformance-INSECURE:{name}".encode()).digest())


OPERATOR = signer("operator")
ALICE, BOB, MALLORY = signer("alice"), signer("bob"), signer("mallory")
ALICE2 = signer("alice-2")
LOG = notes.NoteSigner(ORIGIN, signer("log").signing_key)
WITNESS = notes.CosignatureSigner(WITNESS_NAME, signer("witness").signing_key)


def keys_block(*named: tuple[str, Signer]) -> dict[str, Any]:
    return {
        name: {"seed": s.seed.hex(), "public_key": s.public_key.hex(), "keyid": s.keyid} for name, s in named
    }


def reason_of(action: Callable[[], object]) -> str | None:
    """None if ``action`` succeeds, else the reason of the TrustwireError it raises."""
    try:
        action()
    except TrustwireError as exc:
        return exc.reason
    return None


def document(section: str, description: str, cases: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"protocol": "trustwire/1", "section": section, "description": description, **extra, "cases": cases}


# -- §4 call authentication (v3, from the spec) ----------------------------------------------


def call_message_v3(origin: str, method: str, principal: str, keyid: str, ts: str, nonce: str, body: bytes) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    return f"trustwire-call-v3\n{origin}\n{method}\n{principal}\n{keyid}\n{ts}\n{nonce}\n{digest}\n".encode()


def callauth() -> dict[str, Any]:
    origin = "trustwire.invalid/exchange"
    method = "/trustwire.v1.ExchangeService/Publish"
    body = field_bytes(1, b"example envelope bytes")  # a PublishRequest as sent on the wire
    nonce = "00112233445566778899aabbccddeeff"
    ts = "1767225600000"
    base = {"origin": origin, "method": method, "principal": "alice", "keyid": ALICE.keyid,
            "timestamp": ts, "nonce": nonce, "body": body.hex()}

    def case(name: str, signed: dict[str, Any], sent: dict[str, Any] | None = None, *,
             signature: str | None = None, reason: str | None = None, key: Signer = ALICE,
             message: bytes | None = None) -> dict[str, Any]:
        s = {**base, **signed}
        msg = message if message is not None else call_message_v3(
            s["origin"], s["method"], s["principal"], s["keyid"], s["timestamp"], s["nonce"], bytes.fromhex(s["body"]))
        sig = signature if signature is not None else base64.b64encode(key.sign(msg)).decode()
        call = {**base, **signed, **(sent or {})}
        headers = {"tw-principal": call["principal"], "tw-keyid": call["keyid"], "tw-timestamp": call["timestamp"],
                   "tw-nonce": call["nonce"], "tw-signature": sig}
        out: dict[str, Any] = {"name": name, "origin": call["origin"], "method": call["method"],
                               "body": call["body"], "headers": headers, "valid": reason is None}
        if reason is None:
            out["message"] = msg.decode()
            out["body_sha256"] = hashlib.sha256(bytes.fromhex(call["body"])).hexdigest()
        else:
            out["reason"] = reason
        return out

    v2 = (f"trustwire-call-v2\n{method}\nalice\n{ALICE.keyid}\n{ts}\n{nonce}\n"
          f"{hashlib.sha256(body).hexdigest()}\n").encode()
    cases = [
        case("valid-publish", {}),
        case("valid-empty-body", {"body": "", "method": "/trustwire.v1.AuditService/GetCheckpoint"}),
        case("valid-subscribe", {"method": "/trustwire.v1.ExchangeService/Subscribe",
                                 "body": field_varint(1, 5).hex()}),
        case("wrong-origin", {}, {"origin": "other.invalid/exchange"}, reason="bad-call-signature"),
        case("wrong-method", {}, {"method": "/trustwire.v1.ExchangeService/GetEntries"}, reason="bad-call-signature"),
        case("body-swapped", {}, {"body": field_bytes(1, b"another envelope").hex()}, reason="bad-call-signature"),
        case("timestamp-changed", {}, {"timestamp": "1767225600001"}, reason="bad-call-signature"),
        case("nonce-changed", {}, {"nonce": "ffeeddccbbaa99887766554433221100"}, reason="bad-call-signature"),
        case("signed-by-another-key", {}, key=MALLORY, reason="bad-call-signature"),
        case("signed-as-v2", {}, message=v2, reason="bad-call-signature"),
        case("uppercase-nonce", {"nonce": nonce.upper()}, reason="missing-credentials"),
        case("short-nonce", {"nonce": nonce[:30]}, reason="missing-credentials"),
        case("bad-principal", {"principal": "Alice"}, reason="missing-credentials"),
        case("one-letter-principal", {"principal": "a"}, reason="missing-credentials"),
        case("uppercase-keyid", {"keyid": ALICE.keyid.upper()}, reason="missing-credentials"),
        case("timestamp-16-digits", {"timestamp": "1" * 16}, reason="missing-credentials"),
        case("timestamp-signed", {"timestamp": "+1767225600000"}, reason="missing-credentials"),
        case("signature-unpadded", {}, signature=base64.b64encode(ALICE.sign(b"x")).decode().rstrip("="),
             reason="missing-credentials"),
        case("signature-urlsafe", {}, signature="-_" + base64.b64encode(ALICE.sign(b"x")).decode()[2:],
             reason="missing-credentials"),
        case("signature-63-bytes", {}, signature=base64.b64encode(ALICE.sign(b"x")[:63]).decode(),
             reason="missing-credentials"),
    ]
    return document(
        "4. Call authentication",
        "Signed call messages (v3). A valid case gives the exact message bytes the signature covers; an "
        "invalid case names the first check that fails. Time window and replay are stateful: see "
        "the `window` block.",
        cases,
        keys=keys_block(("alice", ALICE), ("mallory", MALLORY)),
        window={"replay_window_ms": 120_000, "nonce_memory_ms": 240_000,
                "clock_ms": 1_767_225_600_000,
                "timestamps": [{"timestamp": "1767225720000", "valid": True},
                               {"timestamp": "1767225720001", "reason": "expired-call"},
                               {"timestamp": "1767225479999", "reason": "expired-call"}]},
    )


# -- §2/§3 envelopes ----------------------------------------------------------------------


def _signal(**over: Any) -> pb.Signal:
    s = pb.Signal(signal_id="sig-1", member_id="alice", type="md5", value="d41d8cd98f00b204e9800998ecf8427e",
                  labels=["csam"], confidence=90, severity=pb.SEVERITY_HIGH,
                  sharing=pb.Sharing(groups=["all-members"], tlp=pb.TLP_AMBER),
                  created_at=ms_to_timestamp(T0))
    for k, v in over.items():
        if isinstance(v, list):
            del getattr(s, k)[:]
            getattr(s, k).extend(v)
        elif hasattr(v, "CopyFrom"):
            getattr(s, k).CopyFrom(v)
        else:
            setattr(s, k, v)
    return s


def envelope_bytes(payload_type: str, payload: bytes, sig: bytes, keyid: str) -> bytes:
    return field_bytes(1, payload) + field_string(2, payload_type) + field_bytes(
        3, field_bytes(1, sig) + field_string(2, keyid))


def envelopes() -> dict[str, Any]:
    ptype, payload = encode_entry(_signal())
    good = sign_envelope(ptype, payload, ALICE)
    sig = good.sig
    cases: list[dict[str, Any]] = []

    def add(name: str, raw: bytes, key: Signer = ALICE) -> None:
        def check() -> None:
            Envelope.decode(raw).verify(key.public_key)
        reason = reason_of(check)
        case: dict[str, Any] = {"name": name, "envelope": raw.hex(), "public_key": key.public_key.hex(),
                                "valid": reason is None}
        if reason is None:
            env = Envelope.decode(raw)
            case.update(payload_type=env.payload_type, payload=env.payload.hex(), keyid=env.keyid,
                        pae=pae(env.payload_type, env.payload).hex())
        else:
            case["reason"] = reason
        cases.append(case)

    add("valid-signal", good.raw)
    add("valid-hand-encoded", envelope_bytes(ptype, payload, sig, ALICE.keyid))
    add("forged-signature", envelope_bytes(ptype, payload, bytes(64), ALICE.keyid))
    flipped = bytearray(payload)
    flipped[-1] ^= 1
    add("payload-bit-flip", envelope_bytes(ptype, bytes(flipped), sig, ALICE.keyid))
    add("payload-type-swapped", envelope_bytes("application/vnd.trustwire.opinion.v1+protobuf", payload, sig,
                                               ALICE.keyid))
    add("verified-with-another-key", good.raw, key=MALLORY)
    add("signature-63-bytes", envelope_bytes(ptype, payload, sig[:63], ALICE.keyid))
    add("two-signatures", good.raw + field_bytes(3, field_bytes(1, sig) + field_string(2, ALICE.keyid)))
    add("no-signature", field_bytes(1, payload) + field_string(2, ptype))
    add("fields-out-of-order", field_string(2, ptype) + field_bytes(1, payload)
        + field_bytes(3, field_bytes(1, sig) + field_string(2, ALICE.keyid)))
    add("unknown-field", good.raw + field_varint(9, 1))
    add("repeated-singular-field", field_bytes(1, payload) + envelope_bytes(ptype, payload, sig, ALICE.keyid))
    add("non-minimal-length", field_bytes(1, payload)[:1] + long_varint(len(payload), 3) + payload
        + field_string(2, ptype) + field_bytes(3, field_bytes(1, sig) + field_string(2, ALICE.keyid)))
    add("keyid-uppercase", envelope_bytes(ptype, payload, sig, ALICE.keyid.upper()))
    add("keyid-short", envelope_bytes(ptype, payload, sig, ALICE.keyid[:62]))
    add("empty-payload-type", field_bytes(1, payload) + field_bytes(3, field_bytes(1, sig)
                                                                     + field_string(2, ALICE.keyid)))
    add("truncated", good.raw[:-3])
    add("oversized", envelope_bytes(ptype, payload + b"\x00" * 0, sig, ALICE.keyid) + b"")  # placeholder, replaced
    cases.pop()
    big = field_bytes(1, b"\x00" * (64 * 1024)) + field_string(2, ptype) + field_bytes(
        3, field_bytes(1, sig) + field_string(2, ALICE.keyid))
    cases.append({"name": "oversized", "envelope_sha256": hashlib.sha256(big).hexdigest(),
                  "envelope_length": len(big), "valid": False, "reason": "malformed-envelope",
                  "note": "64 KiB of zero payload bytes plus the rest; rebuild it as "
                          "field 1 (64 KiB zeros), field 2 payload_type, field 3 {sig, keyid}"})
    return document(
        "3. DSSE envelopes and key ids",
        "Envelope bytes, decoded and verified with `public_key`. Valid cases give the PAE bytes signed.",
        cases, keys=keys_block(("alice", ALICE), ("mallory", MALLORY)),
        pae_examples=[{"payload_type": "t", "payload": b"".hex(), "pae": pae("t", b"").hex()},
                      {"payload_type": ptype, "payload": b"hello".hex(), "pae": pae(ptype, b"hello").hex()},
                      {"payload_type": "é", "payload": b"\x00".hex(), "pae": pae("é", b"\x00").hex()}],
    )


# -- §1/§2 entries ------------------------------------------------------------------------


def entries() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []

    def add(name: str, kind: EntryKind | str, payload: bytes) -> None:
        ptype = kind.payload_type if isinstance(kind, EntryKind) else kind

        def check() -> None:
            k, e = decode_entry(ptype, payload)
            validate_entry(k, e)
        reason = reason_of(check)
        case: dict[str, Any] = {"name": name, "payload_type": ptype, "payload": payload.hex(),
                                "valid": reason is None}
        if reason is not None:
            case["reason"] = reason
        cases.append(case)

    def enc(entry: Any) -> bytes:
        return encode_entry(entry)[1]

    ts = ms_to_timestamp(T0)
    sig_full = _signal(description="a test", related=["sig-0"], valid_from=ms_to_timestamp(T0),
                       valid_until=ms_to_timestamp(T0 + 86_400_000), labels=["csam", "src:hotline"])
    add("signal-minimal", EntryKind.SIGNAL, enc(_signal()))
    add("signal-every-field", EntryKind.SIGNAL, enc(sig_full))
    add("signal-zero-confidence-omitted", EntryKind.SIGNAL, enc(_signal(confidence=0)))
    base = enc(_signal(confidence=0))
    at7, at13 = base.index(field_varint(7, pb.SEVERITY_HIGH)), base.index(tag(13, 2))
    add("signal-explicit-default-confidence", EntryKind.SIGNAL, base[:at7] + field_varint(6, 0) + base[at7:])
    add("signal-explicit-empty-description", EntryKind.SIGNAL, base[:at13] + field_string(12, "") + base[at13:])
    good = enc(_signal())
    # swap the first two fields (signal_id, member_id)
    first = field_string(1, "sig-1")
    second = field_string(2, "alice")
    assert good.startswith(first + second)
    add("signal-fields-out-of-order", EntryKind.SIGNAL, second + first + good[len(first + second):])
    add("signal-unknown-field", EntryKind.SIGNAL, good + field_varint(99, 1))
    add("signal-repeated-singular", EntryKind.SIGNAL, first + good)
    add("signal-non-minimal-varint", EntryKind.SIGNAL,
        good.replace(field_varint(6, 90), tag(6, 0) + long_varint(90, 2)))
    add("signal-non-normalized-md5", EntryKind.SIGNAL, enc(_signal(value="D41D8CD98F00B204E9800998ECF8427E")))
    add("signal-bad-md5", EntryKind.SIGNAL, enc(_signal(value="d41d8cd98f00b204e9800998ecf8427")))
    add("signal-unknown-type-carried", EntryKind.SIGNAL, enc(_signal(type="future_hash", value="anything at all")))
    add("signal-bad-type-name", EntryKind.SIGNAL, enc(_signal(type="MD5")))
    # value rules (§5): no value_rule = rule 1, which kept userinfo and numeric hosts and had no minimum length
    userinfo = "http://user@example.com/"
    add("signal-rule-1-url-userinfo", EntryKind.SIGNAL, enc(_signal(type="url", value=userinfo)))
    add("signal-rule-2-url-userinfo", EntryKind.SIGNAL, enc(_signal(type="url", value=userinfo, value_rule=2)))
    add("signal-rule-2-url", EntryKind.SIGNAL, enc(_signal(type="url", value="http://192.168.1.1/", value_rule=2)))
    add("signal-rule-1-numeric-host", EntryKind.SIGNAL, enc(_signal(type="url", value="http://3232235777/")))
    add("signal-rule-2-numeric-host", EntryKind.SIGNAL,
        enc(_signal(type="url", value="http://3232235777/", value_rule=2)))
    add("signal-rule-1-short-text", EntryKind.SIGNAL, enc(_signal(type="text", value="a")))
    add("signal-rule-2-short-text", EntryKind.SIGNAL, enc(_signal(type="text", value="a", value_rule=2)))
    add("signal-rule-2-md5", EntryKind.SIGNAL, enc(_signal(value_rule=2)))
    add("signal-rule-1-explicit", EntryKind.SIGNAL, enc(_signal()) + field_varint(14, 1))
    add("signal-rule-3", EntryKind.SIGNAL, enc(_signal(value_rule=3)))
    add("signal-confidence-101", EntryKind.SIGNAL, enc(_signal(confidence=101)))
    add("signal-no-groups", EntryKind.SIGNAL, enc(_signal(sharing=pb.Sharing(tlp=pb.TLP_AMBER))))
    add("signal-duplicate-groups", EntryKind.SIGNAL,
        enc(_signal(sharing=pb.Sharing(groups=["g1", "g1"], tlp=pb.TLP_AMBER))))
    add("signal-no-tlp", EntryKind.SIGNAL, enc(_signal(sharing=pb.Sharing(groups=["all-members"]))))
    add("signal-duplicate-labels", EntryKind.SIGNAL, enc(_signal(labels=["csam", "csam"])))
    add("signal-uppercase-label", EntryKind.SIGNAL, enc(_signal(labels=["CSAM"])))
    add("signal-no-created-at", EntryKind.SIGNAL, enc(_signal(created_at=pb.Signal().created_at)))
    sub_ms = _signal()
    sub_ms.created_at.nanos = 1
    add("signal-sub-millisecond-time", EntryKind.SIGNAL, enc(sub_ms))
    add("signal-valid-until-before-from", EntryKind.SIGNAL,
        enc(_signal(valid_from=ms_to_timestamp(T0), valid_until=ms_to_timestamp(T0))))
    add("signal-bad-member-id", EntryKind.SIGNAL, enc(_signal(member_id="Alice")))
    add("signal-bad-signal-id", EntryKind.SIGNAL, enc(_signal(signal_id="-x")))
    add("signal-description-513", EntryKind.SIGNAL, enc(_signal(description="x" * 513)))
    add("signal-unknown-severity", EntryKind.SIGNAL, enc(_signal()) .replace(field_varint(7, 3), field_varint(7, 9)))
    ref = pb.SignalRef(member_id="alice", signal_id="sig-1")
    add("retraction", EntryKind.RETRACTION, enc(pb.Retraction(
        member_id="alice", signal=ref, reason=pb.RETRACTION_REASON_FALSE_POSITIVE, created_at=ts)))
    add("retraction-no-reason", EntryKind.RETRACTION, enc(pb.Retraction(member_id="alice", signal=ref,
                                                                        created_at=ts)))
    add("opinion", EntryKind.OPINION, enc(pb.Opinion(member_id="bob", signal=ref, verdict=pb.VERDICT_SEEN,
                                                     created_at=ts)))
    add("opinion-no-verdict", EntryKind.OPINION, enc(pb.Opinion(member_id="bob", signal=ref, created_at=ts)))
    add("opinion-bad-ref", EntryKind.OPINION, enc(pb.Opinion(
        member_id="bob", signal=pb.SignalRef(member_id="alice"), verdict=pb.VERDICT_SEEN, created_at=ts)))
    add("keyevent-enrol", EntryKind.KEY_EVENT, enc(pb.KeyEvent(created_at=ts, member_enrolled=pb.MemberEnrolled(
        member_id="alice", display_name="Alice", groups=["all-members"], role=pb.ROLE_MEMBER))))
    add("keyevent-empty", EntryKind.KEY_EVENT, enc(pb.KeyEvent(created_at=ts)))
    rev = pb.KeyRevoked(member_id="alice", keyid=ALICE.keyid, compromised=True)
    rev.compromised_since_index = 0
    add("keyevent-revoked-compromised-since-index-0", EntryKind.KEY_EVENT,
        enc(pb.KeyEvent(created_at=ts, key_revoked=rev)))
    add("unknown-payload-type", "application/vnd.trustwire.note.v1+protobuf", good)
    add("payload-type-v2", "application/vnd.trustwire.signal.v2+protobuf", good)
    add("not-protobuf", EntryKind.SIGNAL, b"\xff\xff\xff")
    return document("1. Entries and payload types / 2. Canonical encoding",
                    "Entry payloads as signed. A verifier decodes them (after the signature) and applies the "
                    "stateless rules; `reason` is the first rule broken.", cases)


# -- §9 ledger records --------------------------------------------------------------------


def records() -> dict[str, Any]:
    env = sign_envelope(*encode_entry(_signal()), ALICE).raw
    cases: list[dict[str, Any]] = []

    def add(name: str, raw: bytes) -> None:
        reason = reason_of(lambda: Record.decode(raw))
        case: dict[str, Any] = {"name": name, "record": raw.hex(), "valid": reason is None}
        if reason is None:
            r = Record.decode(raw)
            case.update(index=r.index, accepted_at_ms=r.accepted_at_ms, envelope=r.envelope.hex(),
                        leaf_hash=merkle.leaf_hash(raw).hex())
        else:
            case["reason"] = reason
        cases.append(case)

    add("index-0", encode_record(0, T0, env))
    add("index-7", encode_record(7, T0 + 1234, env))
    add("index-large", encode_record(2**40 + 3, T0 + 999, env))
    ts_ms = field_bytes(2, field_varint(1, T0 // 1000) + field_varint(2, 5_000_000))
    add("hand-encoded", field_varint(1, 7) + ts_ms + field_bytes(3, env))
    add("explicit-index-0", field_varint(1, 0) + field_bytes(2, field_varint(1, T0 // 1000)) + field_bytes(3, env))
    add("sub-millisecond-accepted-at", field_varint(1, 7) + field_bytes(2, field_varint(1, T0 // 1000)
                                                                          + field_varint(2, 1)) + field_bytes(3, env))
    add("no-accepted-at", field_varint(1, 7) + field_bytes(3, env))
    add("no-envelope", field_varint(1, 7) + field_bytes(2, field_varint(1, T0 // 1000)))
    add("out-of-order", field_bytes(3, env) + field_varint(1, 7) + field_bytes(2, field_varint(1, T0 // 1000)))
    add("unknown-field", encode_record(7, T0, env) + field_varint(4, 1))
    return document("9. Ledger records, leaf hashes, checkpoints and proofs",
                    "LedgerRecord bytes; a valid record's leaf hash is SHA-256(0x00 || record).", cases)


# -- §5 normalization, §6 accounts ---------------------------------------------------------


HARD_CASES: dict[str, list[str]] = {
    "md5": ["  d41d8cd98f00b204e9800998ecf8427e\n", "d41d8cd98f00b204e9800998ecf8427e0", "ｄ41d8cd98f00b204e9800998ecf8427e"],
    "sha256": ["\tE3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\t"],
    "domain": ["EXAMPLE.com..", "xn--bcher-kva.example", "Bücher.Example.", "例え.jp", "a_b.example",
               "ex ample.com", "example.com/", "ﬁ.example", "straße.de", "xn--zca.de", "x." * 127 + "x",
               "1.2.3.4", "-x.example", "x-.example", "*.example.com", "xn--.example", "0", "10", "0x10",
               "1.2.3.0x4", "ab1İä。0Z0。9"],
    "text": ["ǅungla", "ΣΑΣ", "ﬁnancial", "Ｆｕｌｌｗｉｄｔｈ", "a\u00a0b", "a\u2003\u2003b", "tab\tand\nnewline",
             "ß\u0301", "İstanbul", "ı", "ẞ", "Ꭰꭰ", "e\u0301", "\u0130", "x\u0085y", "a\u001cb", "a\u200bb",
             "  ", "\u3000", "x" * 1024, "x" * 1025, "ﷺ"],
    "account": ["ExampleChat:ID:abc", "examplechat:id:has space", "examplechat:username:" + "A" * 64,
                "examplechat:phone:" + "0" * 63, "x:id:" + "y" * 256, "x:id:" + "y" * 257, ":id:1",
                "examplechat:id:a:b", "ex.chat-2:id:é", "-chat:id:1", "chat:ID:ÄÖ"],
    "url": ["https://example.com/a b", "https://example.com:443/", "http://example.com:8080/",
            "https://user:pass@Example.com/", "https://example.com/%7euser", "https://example.com/a%2fb",
            "https://example.com/?b=2&a=1", "https://example.com/a/./b/../c", "https://[::1]/x",
            "https://1.2.3.4:0/", "https://example.com:99999/", "HTTPS://EXAMPLE.COM/PATH",
            "https://example.com/a?q=a b", "https://example.com/ä", "https://example.com/a%7Eb",
            "http://example.com/%41", "https://example.com/a;b=c", "https://example.com/a//b",
            "https://example.com?x", "https://example.com/?", "https://EXAMPLE.com./x",
            "https://xn--bcher-kva.example/", "https://example.com/a%zz", "https://example.com/!$&'()*+,;=:@",
            "https://example.com/?q=%2f", "http://1.2.3.4/", "https://example.com/a/..", "https://user@example.com",
            "http://example.com:80", "https://example.com/a+b", "https://example.com/\"<>`{}|^",
            "https://example.com/a\\b", "https://example.com/%e4", "https://example.com/?a=%e4&b=ä",
            "https://Bücher.example/Straße?q=Straße", "http://10/", "http://0x10/a", "http://ex_ample.com/",
            "https://ex_ample.Straße/x", "https://straße.de/x"],
}


RULE2_CASES: dict[str, list[str]] = {
    "url": ["http://user:pass@Example.com/", "http://user@host.example/x", "http://@example.com/", "http://:@example.com/",
            "http://3232235777/", "http://0xC0A80101/", "http://0300.0250.01.01/", "http://192.168.257/",
            "http://192.0x00A80001/", "http://0x7f.1/", "http://1.2.3.4./", "http://256.1.1.1/", "http://1.2.3.4.5/",
            "http://0x100000000/", "http://08.1.1.1/", "http://example.123/", "http://example.0x1/",
            "http://a..b...c./", "http://user@[::1]:8080/", "http://u%40v@example.com/", "http://0/",
            "http://4294967295/", "http://4294967296/", "http://1.0x/", "http://example.com.0/"],
    "text": ["a", "ab c", "abcd", "a b c d", "!!!!!", "ab-c", "abc!", "日本語テ", "ábc"],
}


def normalization() -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    seen: set[tuple[str, str, int]] = set()

    def add(type_name: str, raw: str, source: str, rule: int = signals.CURRENT_RULE) -> None:
        if (type_name, raw, rule) in seen:
            return
        seen.add((type_name, raw, rule))
        kind = signals.signal_type(type_name)
        name = f"{type_name}:{source}" + ("" if rule == signals.CURRENT_RULE else f":rule-{rule}")
        try:
            value = kind.normalize_under(raw, rule)
            if len(value) > signals.MAX_VALUE_LENGTH:
                raise InvalidValue("too long")
        except TrustwireError as exc:
            cases.append({"name": name, "type": type_name, "rule": rule, "input": raw, "valid": False,
                          "reason": exc.reason})
            return
        case = {"name": name, "type": type_name, "rule": rule, "input": raw, "valid": True,
                "normalized": value, "input_is_canonical": value == raw}
        check = reason_of(lambda: kind.check(value, rule))
        assert check in (None, "broad-value"), (type_name, raw, value, check)
        if check is not None:
            case["signal_reason"] = check  # canonical, but not a signal value under this rule
        cases.append(case)

    for t in signals.BUILTIN_TYPES:
        for i, (raw, _) in enumerate(t.examples):
            add(t.name, raw, f"example-{i}")
        for i, raw in enumerate(t.bad_examples):
            add(t.name, raw, f"bad-{i}")
        for i, raw in enumerate(HARD_CASES.get(t.name, [])):
            add(t.name, raw, f"hard-{i}")
        for i, raw in enumerate(RULE2_CASES.get(t.name, [])):
            add(t.name, raw, f"rule2-{i}")
    for type_name, extra in RULE2_CASES.items():  # the same inputs under rule 1, for entries written under it
        for i, raw in enumerate(HARD_CASES.get(type_name, [])):
            add(type_name, raw, f"hard-{i}", signals.LEGACY_RULE)
        for i, raw in enumerate(extra):
            add(type_name, raw, f"rule2-{i}", signals.LEGACY_RULE)
    for raw in ("anything", "", "x" * 4097):
        add("future_type", raw, f"opaque-{len(raw)}")
    return document(
        "5. Signal types: value grammar and normalization",
        "normalize(type, input) under value rule `rule` (§5: rule 2 is current, rule 1 is what entries without "
        "value_rule were written under). A signed value is accepted iff it is valid and equal to its normalized "
        "form (`input_is_canonical`) and, when `signal_reason` is present, it is refused as a signal value under "
        "that rule with that reason. Text and url depend on Unicode 14.0 tables: see PROTOCOL.md §5.",
        cases, unicode_version="14.0.0",
    )


def accounts() -> dict[str, Any]:
    secret = hashlib.sha256(b"trustwire-conformance-INSECURE:task-force-secret").digest()
    cases: list[dict[str, Any]] = []
    inputs = [
        ("email", "Alice@Example.COM"), ("email", "  alice@example.com "), ("email", "ＡＬＩＣＥ@example.com"),
        ("email", "STRASSE@example.com"), ("email", "straße@example.com"), ("email", "no-at-sign"),
        ("email", "a@b@c"), ("email", "@example.com"),
        ("phone", "+1 (555) 123-4567"), ("phone", "0044 20 7946 0958"), ("phone", "+44.20.7946.0958"),
        ("phone", "555-1234"), ("phone", "+0123456789"), ("phone", "+1234567890123456"), ("phone", "＋15551234567"),
        ("username", "@SomeUser"), ("username", "someuser"), ("username", "two words"), ("username", "@"),
        ("username", "Ǆemal"),
    ]
    for i, (kind, ident) in enumerate(inputs):
        try:
            norm = normalize_identifier(kind, ident)
        except TrustwireError as exc:
            cases.append({"name": f"{kind}-{i}", "kind": kind, "identifier": ident, "valid": False,
                          "reason": exc.reason})
            continue
        mac = hmac.new(secret, f"{kind}:{norm}".encode(), hashlib.sha256).hexdigest()
        cases.append({"name": f"{kind}-{i}", "kind": kind, "identifier": ident, "valid": True,
                      "normalized": norm, "hmac_message": f"{kind}:{norm}", "hmac": mac,
                      "value": f"examplechat:{kind}:{mac}"})
    return document("6. Account indicators",
                    "value = platform ':' kind ':' hex(HMAC-SHA256(secret, kind ':' normalized identifier)).",
                    cases, secret=secret.hex(), platform="examplechat")


# -- §9/§10 Merkle proofs -----------------------------------------------------------------


def merkle_vectors() -> dict[str, Any]:
    leaves = [merkle.leaf_hash(encode_record(i, T0 + i, f"envelope {i}".encode())) for i in range(13)]

    def get_node(level: int, index: int) -> bytes:
        lo = index << level
        return merkle.root_from_leaf_hashes(leaves[lo:lo + (1 << level)])

    roots = {n: merkle.root_from_leaf_hashes(leaves[:n]).hex() for n in range(0, 14)}
    inclusion: list[dict[str, Any]] = []
    for size in (1, 2, 3, 5, 8, 13):
        for index in sorted({0, size // 2, size - 1}):
            proof = merkle.inclusion_proof(index, size, get_node)
            inclusion.append({"name": f"inclusion-{index}-of-{size}", "index": index, "tree_size": size,
                              "leaf_hash": leaves[index].hex(), "proof": [h.hex() for h in proof],
                              "root": roots[size], "valid": True})
    p = merkle.inclusion_proof(5, 13, get_node)
    inclusion.append({"name": "inclusion-wrong-index", "index": 4, "tree_size": 13, "leaf_hash": leaves[5].hex(),
                      "proof": [h.hex() for h in p], "root": roots[13], "valid": False})
    inclusion.append({"name": "inclusion-proof-too-long", "index": 5, "tree_size": 13, "leaf_hash": leaves[5].hex(),
                      "proof": [h.hex() for h in p + [leaves[0]]], "root": roots[13], "valid": False})
    inclusion.append({"name": "inclusion-index-beyond-size", "index": 13, "tree_size": 13,
                      "leaf_hash": leaves[5].hex(), "proof": [h.hex() for h in p], "root": roots[13], "valid": False})
    consistency: list[dict[str, Any]] = []
    for old, new in ((1, 2), (3, 7), (4, 8), (5, 13), (8, 13), (13, 13), (0, 5)):
        proof = merkle.consistency_proof(old, new, get_node)
        consistency.append({"name": f"consistency-{old}-{new}", "old_size": old, "new_size": new,
                            "old_root": roots[old], "new_root": roots[new], "proof": [h.hex() for h in proof],
                            "valid": True})
    cp = merkle.consistency_proof(5, 13, get_node)
    consistency.append({"name": "consistency-forked-old-root", "old_size": 5, "new_size": 13, "old_root": roots[6],
                        "new_root": roots[13], "proof": [h.hex() for h in cp], "valid": False})
    consistency.append({"name": "consistency-truncated-proof", "old_size": 5, "new_size": 13,
                        "old_root": roots[5], "new_root": roots[13], "proof": [h.hex() for h in cp[:-1]],
                        "valid": False})
    batch: list[dict[str, Any]] = []
    for size, idx in ((13, [0]), (13, [3, 4, 5, 6]), (13, [12]), (13, [1, 7, 12]), (8, list(range(8))),
                      (13, [2, 3]), (1, [0])):
        proof = merkle.batch_inclusion_proof(idx, size, get_node)
        batch.append({"name": f"batch-{size}-{'-'.join(map(str, idx))}", "tree_size": size, "indices": idx,
                      "leaf_hashes": [leaves[i].hex() for i in idx], "proof": [h.hex() for h in proof],
                      "root": roots[size], "valid": True})
    bp = merkle.batch_inclusion_proof([3, 4, 5, 6], 13, get_node)
    batch.append({"name": "batch-leaf-swapped", "tree_size": 13, "indices": [3, 4, 5, 6],
                  "leaf_hashes": [leaves[i].hex() for i in (3, 5, 4, 6)], "proof": [h.hex() for h in bp],
                  "root": roots[13], "valid": False})
    batch.append({"name": "batch-extra-hash", "tree_size": 13, "indices": [3, 4, 5, 6],
                  "leaf_hashes": [leaves[i].hex() for i in (3, 4, 5, 6)], "proof": [h.hex() for h in bp + bp[:1]],
                  "root": roots[13], "valid": False})
    batch.append({"name": "batch-unsorted-indices", "tree_size": 13, "indices": [4, 3],
                  "leaf_hashes": [leaves[4].hex(), leaves[3].hex()],
                  "proof": [h.hex() for h in merkle.batch_inclusion_proof([3, 4], 13, get_node)],
                  "root": roots[13], "valid": False})
    def h(values: list[str]) -> list[bytes]:
        return [bytes.fromhex(v) for v in values]

    for c in inclusion:
        c["valid_by_implementation"] = reason_of(partial(
            merkle.verify_inclusion, bytes.fromhex(c["leaf_hash"]), c["index"], c["tree_size"], h(c["proof"]),
            bytes.fromhex(c["root"]))) is None
    for c in consistency:
        c["valid_by_implementation"] = reason_of(partial(
            merkle.verify_consistency, c["old_size"], c["new_size"], bytes.fromhex(c["old_root"]),
            bytes.fromhex(c["new_root"]), h(c["proof"]))) is None
    for c in batch:
        c["valid_by_implementation"] = reason_of(partial(
            merkle.verify_batch_inclusion, list(zip(c["indices"], h(c["leaf_hashes"]), strict=True)),
            c["tree_size"], h(c["proof"]), bytes.fromhex(c["root"]))) is None
    return document("9. Ledger records, leaf hashes, checkpoints and proofs / 10. Reading the stream",
                    "RFC 6962 leaf and node hashes, audit paths, consistency proofs, and Trustwire batch "
                    "inclusion proofs over leaves[i] = leaf hash of record i.", [],
                    leaves=[h.hex() for h in leaves], roots={str(k): v for k, v in roots.items()},
                    inclusion=inclusion, consistency=consistency, batch=batch)


# -- §9 checkpoints -----------------------------------------------------------------------


def checkpoints() -> dict[str, Any]:
    root = merkle.root_from_leaf_hashes([merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")])
    cp = notes.Checkpoint(ORIGIN, 2, root)
    signed = notes.sign_note(cp.to_text(), [LOG])
    other = notes.NoteSigner(ORIGIN, signer("not-the-log").signing_key)
    cosigned = notes.append_signatures(signed, [WITNESS.sign(cp, 1_767_225_600)])
    cases: list[dict[str, Any]] = []

    def add(name: str, note: str, quorum: int = 0) -> None:
        log_v = notes.NoteVerifier.from_string(LOG.verifier_key())
        wit_v = notes.CosignatureVerifier.from_string(WITNESS.verifier_key())
        reason = reason_of(lambda: notes.open_checkpoint(note, [log_v], [wit_v], quorum))
        case: dict[str, Any] = {"name": name, "note": note, "witness_quorum": quorum, "valid": reason is None}
        if reason is None:
            opened = notes.open_checkpoint(note, [log_v], [wit_v], quorum).checkpoint
            case.update(origin=opened.origin, size=opened.size, root=opened.root_hash.hex())
        cases.append(case)

    add("signed-by-log", signed)
    add("cosigned", cosigned, quorum=1)
    add("missing-cosignature", signed, quorum=1)
    add("signed-by-another-key-same-name", notes.sign_note(cp.to_text(), [other]))
    add("size-changed", signed.replace("\n2\n", "\n3\n", 1))
    add("root-changed", signed.replace(base64.b64encode(root).decode(), base64.b64encode(bytes(32)).decode()))
    add("extra-signature-unknown-key", notes.sign_note(cp.to_text(), [LOG, other]))
    add("no-blank-line", signed.replace("\n\n", "\n", 1))
    add("empty-tree", notes.sign_note(notes.Checkpoint(ORIGIN, 0, merkle.EMPTY_ROOT).to_text(), [LOG]))
    return document("9. Ledger records, leaf hashes, checkpoints and proofs",
                    "C2SP signed-note checkpoints, opened with the log key and witness key below.", cases,
                    log_verifier_key=LOG.verifier_key(), witness_verifier_key=WITNESS.verifier_key(),
                    origin=ORIGIN)


# -- §8 key directory: a stream of records with a verdict for each ----------------------


def keydir_stream() -> dict[str, Any]:
    ts = T0

    def key_event(**event: Any) -> pb.KeyEvent:
        return pb.KeyEvent(created_at=ms_to_timestamp(ts), **event)

    def sig(signal_id: str, member: str = "alice", groups: tuple[str, ...] = ("all-members",),
            tlp: int = pb.TLP_AMBER) -> pb.Signal:
        return _signal(signal_id=signal_id, member_id=member,
                       sharing=pb.Sharing(groups=list(groups), tlp=tlp))  # type: ignore[arg-type]

    steps: list[tuple[str, Any, Signer, int]] = [  # (name, entry, signed by, accepted_at offset ms)
        ("create-group", key_event(group_created=pb.GroupCreated(group_id="all-members", display_name="All",
                                                                 max_tlp=pb.TLP_AMBER)), OPERATOR, 0),
        ("create-group-2", key_event(group_created=pb.GroupCreated(group_id="ncii", display_name="NCII",
                                                                   max_tlp=pb.TLP_RED)), OPERATOR, 0),
        ("enrol-alice", key_event(member_enrolled=pb.MemberEnrolled(
            member_id="alice", display_name="Alice", groups=["all-members", "ncii"], role=pb.ROLE_MEMBER)), OPERATOR, 0),
        ("enrol-bob", key_event(member_enrolled=pb.MemberEnrolled(
            member_id="bob", display_name="Bob", groups=["all-members"], role=pb.ROLE_MEMBER)), OPERATOR, 0),
        ("key-alice", key_event(key_added=pb.KeyAdded(member_id="alice", public_key=ALICE.public_key,
                                                      valid_from=ms_to_timestamp(T0))), OPERATOR, 0),
        ("key-bob-from-later", key_event(key_added=pb.KeyAdded(member_id="bob", public_key=BOB.public_key,
                                                               valid_from=ms_to_timestamp(T0 + 60_000))), OPERATOR, 0),
        ("alice-signal", sig("s1"), ALICE, 1000),
        ("bob-before-valid-from", sig("b1", "bob"), BOB, 1000),
        ("bob-after-valid-from", sig("b2", "bob"), BOB, 61_000),
        ("bob-signs-as-alice", sig("b3", "alice"), BOB, 61_000),
        ("unknown-key", sig("m1", "mallory"), MALLORY, 61_000),
        ("member-signs-key-event", key_event(member_suspended=pb.MemberSuspended(member_id="bob")), ALICE, 61_000),
        ("operator-signs-signal", sig("o1", "alice"), OPERATOR, 61_000),
        ("bob-group-not-his", sig("b4", "bob", ("ncii",)), BOB, 61_000),
        ("alice-tlp-too-high", sig("s2", "alice", ("all-members",), pb.TLP_RED), ALICE, 61_000),
        ("alice-tlp-red-in-ncii", sig("s3", "alice", ("ncii",), pb.TLP_RED), ALICE, 61_000),
        ("suspend-bob", key_event(member_suspended=pb.MemberSuspended(member_id="bob")), OPERATOR, 61_000),
        ("bob-while-suspended", sig("b5", "bob"), BOB, 62_000),
        ("reinstate-bob", key_event(member_reinstated=pb.MemberReinstated(member_id="bob")), OPERATOR, 62_000),
        ("bob-reinstated", sig("b6", "bob"), BOB, 62_000),
        ("alice-second-key", key_event(key_added=pb.KeyAdded(member_id="alice", public_key=ALICE2.public_key,
                                                             valid_from=ms_to_timestamp(T0))), OPERATOR, 62_000),
        ("retire-alice-key-later", key_event(key_revoked=pb.KeyRevoked(
            member_id="alice", keyid=ALICE.keyid, revoked_at=ms_to_timestamp(T0 + 70_000))), OPERATOR, 62_000),
        ("alice-old-key-in-overlap", sig("s4"), ALICE, 69_999),
        ("alice-old-key-after-retirement", sig("s5"), ALICE, 70_000),
        ("alice-new-key", sig("s6"), ALICE2, 70_000),
        ("revoke-bob-compromised-from-0", key_event(key_revoked=_compromised("bob", BOB.keyid, 0)), OPERATOR, 70_000),
        ("bob-after-compromise", sig("b7", "bob"), BOB, 70_001),
        ("retire-group", key_event(group_retired=pb.GroupRetired(group_id="ncii")), OPERATOR, 70_001),
        ("alice-into-retired-group", sig("s7", "alice", ("ncii",)), ALICE2, 70_001),
        ("enrol-twice", key_event(member_enrolled=pb.MemberEnrolled(
            member_id="bob", display_name="Bob", groups=["all-members"], role=pb.ROLE_MEMBER)), OPERATOR, 70_001),
        ("retract-own", pb.Retraction(member_id="alice", signal=pb.SignalRef(member_id="alice", signal_id="s1"),
                                      reason=pb.RETRACTION_REASON_ERROR, created_at=ms_to_timestamp(ts)),
         ALICE2, 70_002),
        # monotone tightening: a retired key in its overlap may still be revoked as compromised
        ("retire-alice-2-later", key_event(key_revoked=pb.KeyRevoked(
            member_id="alice", keyid=ALICE2.keyid, revoked_at=ms_to_timestamp(T0 + 90_000))), OPERATOR, 70_003),
        ("loosen-alice-2-retirement", key_event(key_revoked=pb.KeyRevoked(
            member_id="alice", keyid=ALICE2.keyid, revoked_at=ms_to_timestamp(T0 + 95_000))), OPERATOR, 70_004),
        ("alice-2-in-overlap-stolen", sig("s8"), ALICE2, 70_005),
        ("compromise-alice-2-after-rotation", key_event(key_revoked=_compromised("alice", ALICE2.keyid, 33)),
         OPERATOR, 70_006),
        ("alice-2-after-compromise-in-overlap", sig("s9"), ALICE2, 70_007),
        ("compromise-alice-2-again-later", key_event(key_revoked=_compromised("alice", ALICE2.keyid, 34)),
         OPERATOR, 70_008),
        ("add-operator-key-as-member-key", key_event(key_added=pb.KeyAdded(
            member_id="bob", public_key=OPERATOR.public_key, valid_from=ms_to_timestamp(T0))), OPERATOR, 70_009),
    ]
    assert steps[33][0] == "alice-2-in-overlap-stolen"
    verifier = EntryVerifier(OPERATOR.public_key, KeyDirectory())
    cases: list[dict[str, Any]] = []
    for index, (name, entry, by, offset) in enumerate(steps):
        raw = encode_record(index, T0 + offset, sign_envelope(*encode_entry(entry), by).raw)
        reason: str | None
        try:
            verifier.verify(raw)
            reason = None
        except TrustwireError as exc:
            reason = getattr(exc, "cause", None) or exc.reason
            verifier.last_index = index  # a rejected record still occupies its index
        case: dict[str, Any] = {"name": name, "index": index, "record": raw.hex(), "valid": reason is None}
        if reason is not None:
            case["reason"] = reason
        cases.append(case)
    tainted = [c["index"] for c in cases if c["valid"] and (c["name"].startswith("bob-") or c["name"].endswith("-stolen"))]
    key_events = [(c["index"], bytes.fromhex(c["record"])) for c in cases
                  if c["valid"] and isinstance(steps[c["index"]][1], pb.KeyEvent)]
    commitments = [{"size": size, "line": keydir_commit([r for i, r in key_events if i < size]).line()}
                   for size in (0, 1, 6, 20, len(steps))]
    return document(
        "8. The key directory and the time base of key validity",
        "A ledger replayed in order by a verifier that pins the operator key. Each record is accepted "
        "(`valid`) or refused with `reason`; refused records still occupy their index. After the whole "
        "stream, `tainted_by_compromise` lists the accepted indices a compromised key signed at or after "
        "its compromised_since point (they must be quarantined). `keydir_commitments`: the "
        "`trustwire-keydir` checkpoint line (§10) a checkpoint of `size` carries over the accepted KeyEvent "
        "records below that size.",
        cases, operator_public_key=OPERATOR.public_key.hex(), tainted_by_compromise=tainted,
        keydir_commitments=commitments,
        keys=keys_block(("operator", OPERATOR), ("alice", ALICE), ("alice-2", ALICE2), ("bob", BOB),
                        ("mallory", MALLORY)),
    )


def _compromised(member: str, keyid: str, since: int) -> pb.KeyRevoked:
    revoked = pb.KeyRevoked(member_id=member, keyid=keyid, compromised=True)
    revoked.compromised_since_index = since
    return revoked


def keys_vectors() -> dict[str, Any]:
    cases = []
    samples = [("valid", ALICE.public_key), ("short", ALICE.public_key[:31]),
               ("identity-small-order", bytes([1]) + bytes(31)),
               ("non-canonical-y", bytes([0xED] + [0xFF] * 30 + [0x7F])), ("zero", bytes(32))]
    for name, key in samples:
        reason = reason_of(partial(parse_public_key, key))
        case = {"name": name, "public_key": key.hex(), "valid": reason is None}
        if reason is None:
            case["keyid"] = key_id(key)
        else:
            case["reason"] = reason
        cases.append(case)
    sig = ALICE.sign(b"message")
    verify_cases = [{"name": "valid", "public_key": ALICE.public_key.hex(), "message": b"message".hex(),
                     "signature": sig.hex(), "valid": reason_of(lambda: verify_signature(
                         ALICE.public_key, b"message", sig)) is None}]
    bad_s = sig[:32] + (int.from_bytes(sig[32:], "little") + 2**252 + 27742317777372353535851937790883648493)\
        .to_bytes(32, "little")
    verify_cases.append({"name": "non-canonical-s", "public_key": ALICE.public_key.hex(),
                         "message": b"message".hex(), "signature": bad_s.hex(),
                         "valid": reason_of(lambda: verify_signature(ALICE.public_key, b"message", bad_s)) is None})
    return document("3. DSSE envelopes and key ids",
                    "Member public keys accepted at enrolment, and Ed25519 signature acceptance.", cases,
                    signatures=verify_cases)


GENERATORS: dict[str, Callable[[], dict[str, Any]]] = {
    "callauth": callauth, "envelopes": envelopes, "entries": entries, "records": records,
    "normalization": normalization, "accounts": accounts, "merkle": merkle_vectors,
    "checkpoints": checkpoints, "keydir": keydir_stream, "keys": keys_vectors,
}


def render(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False, sort_keys=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if a vector file is out of date")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    stale = []
    for name, make in GENERATORS.items():
        path = OUT / f"{name}.json"
        text = render(make())
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(path.name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print("out of date: " + ", ".join(stale) + " (run python -m conformance.generate)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
