"""Fuzzing machinery shared by tests/fuzz (bounded, in CI) and reliability/fuzz_long.py.

Three parts:

* **Seeds**: valid inputs for every parser (canonical envelopes of each entry kind,
  ledger records, signed checkpoint notes, cosignature lines, verifier keys, witness
  add-checkpoint bodies) and a valid request body for every RPC.
* **Mutators**: protobuf-aware and byte-level mutations (bit flips, truncation, field
  duplication, unknown fields, huge or overlong lengths, wrong wire types, nested
  mutation inside a length-delimited field, splices), driven by a ``random.Random``.
* **Targets**: one function per parser that must either accept its input or raise a
  :class:`~exchange.core.errors.TrustwireError` subclass. Anything else escaping a
  target is a crash. Accepted inputs must also round-trip where the format is
  canonical (the bytes re-encode to themselves).

Regression vectors (tests/fuzz/regressions/*.json) name a target and carry the input
in hex; :func:`replay_vector` runs one.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from exchange.core import note as notes
from exchange.core import witness_protocol as wp
from exchange.core.dsse import Envelope, sign_envelope
from exchange.core.entries import decode_entry, encode_entry, ms_to_timestamp, validate_entry
from exchange.core.errors import TrustwireError
from exchange.core.keys import Signer
from exchange.core.records import Record, encode_record
from exchange.pb.trustwire.v1 import audit_pb2 as apb
from exchange.pb.trustwire.v1 import entries_pb2 as pb
from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
from exchange.pb.trustwire.v1 import operator_pb2 as opb

__all__ = [
    "PARSERS",
    "RPCS",
    "Rpc",
    "check_parser",
    "insecure_signer",
    "mutate",
    "parser_seeds",
    "replay_vector",
    "save_vector",
]

NOW_MS = 1_750_000_000_000
GROUP_ALL = "all-members"
MD5_VALUES = (
    "d41d8cd98f00b204e9800998ecf8427e",
    "0cc175b9c0f1b6a831c399e269772661",
    "92eb5ffee6ae2fec3ad71c777531578f",
)


def insecure_signer(name: str) -> Signer:
    """Deterministic INSECURE keys, the same ones tests/conftest.py enrols."""
    return Signer.from_seed(hashlib.sha256(f"trustwire-test-INSECURE:{name}".encode()).digest())


# --------------------------------------------------------------------------------------------
# Seeds
# --------------------------------------------------------------------------------------------


def sample_entries(member: str = "alice") -> list[pb.Signal | pb.Retraction | pb.Opinion | pb.KeyEvent]:
    """One valid entry of each kind (and a few signal types) for ``member``."""
    ts = ms_to_timestamp(NOW_MS)
    out: list[pb.Signal | pb.Retraction | pb.Opinion | pb.KeyEvent] = [
        pb.Signal(
            signal_id=f"{member}-fuzz-seed-{i}", member_id=member, type=t, value=v, labels=["spam", "src:fuzz"],
            confidence=60, severity=pb.SEVERITY_HIGH, sharing=pb.Sharing(groups=[GROUP_ALL], tlp=pb.TLP_AMBER),
            valid_from=ms_to_timestamp(NOW_MS - 1000), valid_until=ms_to_timestamp(NOW_MS + 86_400_000),
            related=["other-1"], description="fuzz seed", created_at=ts,
        )
        for i, (t, v) in enumerate(
            [
                ("md5", MD5_VALUES[0]),
                ("url", "https://example.com/a?b=1"),
                ("domain", "xn--bcher-kva.example"),
                ("account", "examplechat:id:1234567"),
                ("text", "buy cheap followers"),
                ("pdq", "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"),
            ]
        )
    ]
    ref = pb.SignalRef(member_id=member, signal_id=f"{member}-fuzz-seed-0")
    out.append(pb.Retraction(member_id=member, signal=ref, reason=pb.RETRACTION_REASON_ERROR, created_at=ts))
    out.append(pb.Opinion(member_id=member, signal=ref, verdict=pb.VERDICT_TRUE_POSITIVE, created_at=ts))
    out.append(
        pb.KeyEvent(
            created_at=ts,
            member_enrolled=pb.MemberEnrolled(member_id="zed", display_name="Zed", groups=[GROUP_ALL], role=pb.ROLE_MEMBER),
        )
    )
    out.append(
        pb.KeyEvent(
            created_at=ts,
            key_added=pb.KeyAdded(member_id="zed", public_key=bytes(range(32)), valid_from=ts),
        )
    )
    return out


def seed_envelopes(member: str = "alice") -> list[bytes]:
    signer = insecure_signer(member)
    return [sign_envelope(*encode_entry(e), signer).raw for e in sample_entries(member)]


def seed_payloads() -> list[tuple[str, bytes]]:
    return [encode_entry(e) for e in sample_entries()]


def seed_records() -> list[bytes]:
    return [encode_record(i, NOW_MS + i, env) for i, env in enumerate(seed_envelopes())]


@dataclass(frozen=True, slots=True)
class NoteKeys:
    log: notes.NoteSigner
    witness: notes.CosignatureSigner
    origin: str = "fuzz.trustwire.invalid/log"


def note_keys() -> NoteKeys:
    import nacl.signing

    log = notes.NoteSigner("fuzz.trustwire.invalid/log", nacl.signing.SigningKey(hashlib.sha256(b"fuzz-log").digest()))
    wit = notes.CosignatureSigner("fuzz-witness", nacl.signing.SigningKey(hashlib.sha256(b"fuzz-wit").digest()))
    return NoteKeys(log=log, witness=wit)


def seed_notes() -> list[str]:
    keys = note_keys()
    out = []
    for size, ext in ((0, ()), (1, ()), (7, ("ext line",)), (1 << 40, ())):
        cp = notes.Checkpoint(keys.origin, size, hashlib.sha256(str(size).encode()).digest(), tuple(ext))
        note = notes.sign_note(cp.to_text(), [keys.log])
        cosig = keys.witness.sign(cp, 1_700_000_000)
        out.append(notes.append_signatures(note, [cosig]))
    return out


def seed_witness_bodies() -> list[bytes]:
    note = seed_notes()[2]
    proof = [hashlib.sha256(bytes([i])).digest() for i in range(3)]
    return [wp.encode_add_checkpoint(0, [], seed_notes()[1]), wp.encode_add_checkpoint(3, proof, note)]


def parser_seeds() -> dict[str, list[bytes]]:
    """Valid inputs per parser target, as bytes."""
    cps = [notes.parse_note(n).text for n in seed_notes()]
    sig_lines = [line for n in seed_notes() for line in n.split("\n\n")[-1].splitlines()]
    keys = note_keys()
    payloads = seed_payloads()
    return {
        "envelope": seed_envelopes(),
        "entry": [_entry_input(pt, p) for pt, p in payloads],
        "record": seed_records(),
        "note": [n.encode() for n in seed_notes()],
        "checkpoint": [c.encode() for c in cps],
        "verifier_key": [keys.log.verifier_key().encode(), keys.witness.verifier_key().encode()],
        "signature_line": [s.encode() for s in sig_lines],
        "witness_request": seed_witness_bodies(),
        "witness_response": [("\n".join(sig_lines) + "\n").encode(), b"12345\n"],
    }


def _entry_input(payload_type: str, payload: bytes) -> bytes:
    """The entry target's input: payload type, a NUL, the payload."""
    return payload_type.encode() + b"\x00" + payload


# --------------------------------------------------------------------------------------------
# Parser targets
# --------------------------------------------------------------------------------------------


def _text(data: bytes) -> str:
    # invalid UTF-8 becomes lone surrogates, which the text parsers must refuse cleanly
    return data.decode("utf-8", "surrogateescape")


def _t_envelope(data: bytes) -> None:
    env = Envelope.decode(data)
    if env.raw != data:
        raise AssertionError("accepted envelope does not keep its exact bytes")
    env.digest  # noqa: B018


def _t_entry(data: bytes) -> None:
    type_bytes, _, payload = data.partition(b"\x00")
    payload_type = _text(type_bytes)
    kind, entry = decode_entry(payload_type, payload)
    if encode_entry(entry) != (kind.payload_type, payload):
        raise AssertionError("accepted entry payload is not canonical")
    validate_entry(kind, entry)


def _t_record(data: bytes) -> None:
    rec = Record.decode(data)
    if encode_record(rec.index, rec.accepted_at_ms, rec.envelope) != data:
        # a record that decodes but does not re-encode must have been refused
        raise AssertionError("accepted ledger record is not canonical")
    rec.leaf_hash  # noqa: B018


def _t_note(data: bytes) -> None:
    keys = note_keys()
    for note in (data, _text(data)):
        try:
            parsed = notes.parse_note(note)
        except TrustwireError:
            continue
        rebuilt = parsed.text + "\n" + "".join(s.to_line() for s in parsed.signatures)
        if rebuilt.encode("utf-8", "surrogatepass") != (note if isinstance(note, bytes) else note.encode("utf-8", "surrogatepass")):
            raise AssertionError("accepted note does not re-encode to itself")
        try:
            notes.open_note(note, [keys.log.verifier, keys.witness.verifier])
        except TrustwireError:
            pass
        try:
            notes.open_checkpoint(note, [keys.log.verifier], [keys.witness.verifier], quorum=1)
        except TrustwireError:
            pass


def _t_checkpoint(data: bytes) -> None:
    text = _text(data)
    cp = notes.Checkpoint.parse(text)
    if cp.to_text() != text:
        raise AssertionError("accepted checkpoint text does not re-encode to itself")


def _t_verifier_key(data: bytes) -> None:
    text = _text(data)
    for parse in (notes.NoteVerifier.from_string, notes.CosignatureVerifier.from_string, notes.parse_verifier_key):
        try:
            v = parse(text)
        except TrustwireError:
            continue
        if v.verifier_key() != text:
            raise AssertionError("accepted verifier key does not re-encode to itself")


def _t_signature_line(data: bytes) -> None:
    text = _text(data)
    sig = notes.Signature.parse_line(text)
    if sig.to_line() != text + "\n":
        raise AssertionError("accepted signature line does not re-encode to itself")


def _t_witness_request(data: bytes) -> None:
    req = wp.parse_add_checkpoint(data)
    if req.encode() != data:
        raise AssertionError("accepted add-checkpoint body does not re-encode to itself")


def _t_witness_response(data: bytes) -> None:
    """A 200 body (cosignature lines) or a 409 body (a tree size); refused if neither."""
    refused: TrustwireError | None = None
    try:
        sigs = wp.parse_cosignatures(data)
        if wp.format_cosignatures(sigs) != data:
            raise AssertionError("accepted cosignature body does not re-encode to itself")
    except TrustwireError as exc:
        refused = exc
    try:
        size = wp.parse_size(data)
        if wp.format_size(size) != data:
            raise AssertionError("accepted size body does not re-encode to itself")
    except TrustwireError:
        if refused is not None:
            raise


PARSERS: dict[str, Callable[[bytes], None]] = {
    "envelope": _t_envelope,
    "entry": _t_entry,
    "record": _t_record,
    "note": _t_note,
    "checkpoint": _t_checkpoint,
    "verifier_key": _t_verifier_key,
    "signature_line": _t_signature_line,
    "witness_request": _t_witness_request,
    "witness_response": _t_witness_response,
}


def check_parser(target: str, data: bytes) -> bool:
    """Run one parser target: True if accepted, False if refused with a TrustwireError.

    Any other exception (including the AssertionErrors of the round-trip checks)
    propagates: that is a crash.
    """
    try:
        PARSERS[target](data)
    except TrustwireError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Mutators
# --------------------------------------------------------------------------------------------

INTERESTING_VARINTS = (0, 1, 0x7F, 0x80, 0x3FFF, 0x4000, 2**31 - 1, 2**31, 2**32, 2**63 - 1, 2**63, 2**64 - 1)
INTERESTING_BYTES = (0x00, 0x01, 0x0A, 0x20, 0x2B, 0x7F, 0x80, 0xC0, 0xE2, 0xFF)


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def overlong_varint(n: int, extra: int) -> bytes:
    """A non-minimal encoding of ``n`` (padding continuation bytes)."""
    v = bytearray(varint(n))
    v[-1] |= 0x80
    v.extend(b"\x80" * (extra - 1))
    v.append(0x00)
    return bytes(v)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("bad varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return result, pos


@dataclass(frozen=True, slots=True)
class Field:
    start: int  # tag position
    value_start: int  # after tag (and after the length, for LEN fields)
    end: int
    number: int
    wire: int
    length_pos: int = -1  # position of the length varint of a LEN field


def wire_fields(data: bytes) -> list[Field] | None:
    """Top-level protobuf fields of ``data``, or None if it does not parse as wire format."""
    out: list[Field] = []
    pos = 0
    try:
        while pos < len(data):
            start = pos
            tag, pos = _read_varint(data, pos)
            number, wire = tag >> 3, tag & 7
            if number == 0:
                return None
            if wire == 0:
                _, pos = _read_varint(data, pos)
                out.append(Field(start, start, pos, number, wire))
            elif wire == 1:
                pos += 8
                out.append(Field(start, pos - 8, pos, number, wire))
            elif wire == 5:
                pos += 4
                out.append(Field(start, pos - 4, pos, number, wire))
            elif wire == 2:
                length_pos = pos
                length, pos = _read_varint(data, pos)
                value_start = pos
                pos += length
                out.append(Field(start, value_start, pos, number, wire, length_pos))
            else:
                return None
            if pos > len(data):
                return None
    except ValueError:
        return None
    return out


def _random_field(rnd: random.Random) -> bytes:
    number = rnd.choice([rnd.randint(1, 20), rnd.randint(1, 2**29 - 1), 19000, 536870911])
    wire = rnd.choice([0, 1, 2, 5, 3, 4, 6, 7])
    tag = varint((number << 3) | wire)
    if wire == 0:
        return tag + varint(rnd.choice(INTERESTING_VARINTS))
    if wire == 1:
        return tag + rnd.randbytes(8)
    if wire == 5:
        return tag + rnd.randbytes(4)
    if wire == 2:
        body = rnd.randbytes(rnd.randint(0, 40))
        return tag + varint(len(body)) + body
    return tag  # group markers and invalid wire types


def mutate(data: bytes, rnd: random.Random, rounds: int | None = None) -> bytes:
    """Apply 1..4 random mutations to ``data``."""
    for _ in range(rounds if rounds is not None else rnd.randint(1, 4)):
        data = _mutate_once(data, rnd)
    return data


def _mutate_once(data: bytes, rnd: random.Random) -> bytes:  # noqa: C901 - a menu of mutations
    fields = wire_fields(data) if data else None
    choice = rnd.randrange(16)
    if not data:
        return rnd.randbytes(rnd.randint(1, 16))
    if choice == 0:  # bit flip
        b = bytearray(data)
        i = rnd.randrange(len(b))
        b[i] ^= 1 << rnd.randrange(8)
        return bytes(b)
    if choice == 1:  # truncation
        return data[: rnd.randrange(len(data))]
    if choice == 2:  # interesting byte
        b = bytearray(data)
        b[rnd.randrange(len(b))] = rnd.choice(INTERESTING_BYTES)
        return bytes(b)
    if choice == 3:  # insert random bytes
        i = rnd.randrange(len(data) + 1)
        return data[:i] + rnd.randbytes(rnd.randint(1, 8)) + data[i:]
    if choice == 4:  # delete a span
        i = rnd.randrange(len(data))
        return data[:i] + data[i + rnd.randint(1, 16) :]
    if choice == 5:  # unknown field at the end or the start
        extra = _random_field(rnd)
        return data + extra if rnd.random() < 0.7 else extra + data
    if choice == 6:  # duplicate data (splice a chunk of itself)
        i, j = sorted((rnd.randrange(len(data)), rnd.randrange(len(data))))
        k = rnd.randrange(len(data) + 1)
        return data[:k] + data[i : j + 1] + data[k:]
    if fields:
        f = rnd.choice(fields)
        if choice == 7:  # duplicate a field (repeated or last-one-wins semantics)
            chunk = data[f.start : f.end]
            return data + chunk if rnd.random() < 0.5 else data[: f.end] + chunk + data[f.end :]
        if choice == 8 and f.wire == 2:  # huge length
            huge = rnd.choice([len(data) * 2, 2**31 - 1, 2**31, 2**32, 2**63, 2**64 - 1])
            _, after = _read_varint(data, f.length_pos)
            return data[: f.length_pos] + varint(huge) + data[after:]
        if choice == 9 and f.wire == 2:  # overlong (non-minimal) length varint
            length, after = _read_varint(data, f.length_pos)
            return data[: f.length_pos] + overlong_varint(length, rnd.randint(1, 9)) + data[after:]
        if choice == 10:  # overlong tag
            tag, after = _read_varint(data, f.start)
            return data[: f.start] + overlong_varint(tag, rnd.randint(1, 4)) + data[after:]
        if choice == 11:  # wrong wire type
            tag, after = _read_varint(data, f.start)
            return data[: f.start] + varint((tag & ~7) | rnd.choice([0, 1, 2, 3, 4, 5, 6, 7])) + data[after:]
        if choice == 12 and f.wire == 2:  # nested mutation, length kept consistent
            inner = mutate(data[f.value_start : f.end], rnd, rounds=1)
            _, after = _read_varint(data, f.length_pos)
            return data[: f.length_pos] + varint(len(inner)) + inner + data[f.end :]
        if choice == 13:  # drop a field
            return data[: f.start] + data[f.end :]
        if choice == 14 and len(fields) > 1:  # swap two fields (non-canonical order)
            g = rnd.choice(fields)
            a, b = sorted((f, g), key=lambda x: x.start)
            if a.end <= b.start:
                return data[: a.start] + data[b.start : b.end] + data[a.end : b.start] + data[a.start : a.end] + data[b.end :]
        if choice == 15 and f.wire == 0:  # interesting varint value
            _, after = _read_varint(data, f.value_start if f.value_start != f.start else _skip_tag(data, f.start))
            pos = _skip_tag(data, f.start)
            return data[:pos] + varint(rnd.choice(INTERESTING_VARINTS)) + data[after:]
    # text-ish mutations for the note formats
    b = bytearray(data)
    i = rnd.randrange(len(b) + 1)
    token = rnd.choice([b"\n", b"\n\n", b" ", b"+", b"\xe2\x80\x94 ", b"=", b"\r", b"\t", b"\x00", b"0", b"\xed\xa0\x80"])
    return bytes(b[:i]) + token + bytes(b[i:])


def _skip_tag(data: bytes, pos: int) -> int:
    _, after = _read_varint(data, pos)
    return after


# --------------------------------------------------------------------------------------------
# RPCs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rpc:
    method: str
    request: type
    streaming: bool
    seeds: tuple[bytes, ...]


def _ser(*msgs: object) -> tuple[bytes, ...]:
    return tuple(m.SerializeToString(deterministic=True) for m in msgs)  # type: ignore[attr-defined]


def rpc_table(published: list[bytes]) -> list[Rpc]:
    """Every RPC of the exchange with valid seed bodies; ``published`` are envelopes
    already in the ledger (so re-sending them is idempotent: no side effect)."""
    ex, au, op = "/trustwire.v1.ExchangeService/", "/trustwire.v1.AuditService/", "/trustwire.v1.OperatorService/"
    big = 2**64 - 1
    return [
        Rpc(ex + "Publish", xpb.PublishRequest, False,
            _ser(xpb.PublishRequest(envelopes=published[:3]), xpb.PublishRequest(envelopes=published[-1:]),
                 xpb.PublishRequest())),
        Rpc(ex + "Subscribe", xpb.SubscribeRequest, True,
            _ser(xpb.SubscribeRequest(from_index=0, stop_at_head=True), xpb.SubscribeRequest(from_index=3, trusted_size=2),
                 xpb.SubscribeRequest(from_index=big, stop_at_head=True, trusted_size=big))),
        Rpc(ex + "GetEntries", xpb.GetEntriesRequest, False,
            _ser(xpb.GetEntriesRequest(from_index=0, limit=5), xpb.GetEntriesRequest(from_index=big, limit=2**32 - 1))),
        Rpc(ex + "GetKeyDirectory", xpb.GetKeyDirectoryRequest, False,
            _ser(xpb.GetKeyDirectoryRequest(until_index=4), xpb.GetKeyDirectoryRequest(until_index=big))),
        Rpc(au + "GetCheckpoint", apb.GetCheckpointRequest, False, _ser(apb.GetCheckpointRequest())),
        Rpc(au + "ListCheckpoints", apb.ListCheckpointsRequest, False,
            _ser(apb.ListCheckpointsRequest(from_size=0, limit=3), apb.ListCheckpointsRequest(from_size=big, limit=2**32 - 1))),
        Rpc(au + "GetInclusionProof", apb.GetInclusionProofRequest, False,
            _ser(apb.GetInclusionProofRequest(index=1, tree_size=0), apb.GetInclusionProofRequest(index=big, tree_size=big))),
        Rpc(au + "GetConsistencyProof", apb.GetConsistencyProofRequest, False,
            _ser(apb.GetConsistencyProofRequest(old_size=1, new_size=0),
                 apb.GetConsistencyProofRequest(old_size=big, new_size=big))),
        Rpc(au + "GetAllEntries", apb.GetAllEntriesRequest, False,
            _ser(apb.GetAllEntriesRequest(from_index=0, limit=3), apb.GetAllEntriesRequest(from_index=big, limit=2**32 - 1))),
        Rpc(op + "GetStatus", opb.GetStatusRequest, False,
            _ser(opb.GetStatusRequest(), opb.GetStatusRequest(window_s=2**32 - 1, silent_after_s=2**32 - 1,
                                                              checkpoint_max_age_s=2**32 - 1))),
        Rpc(op + "ListRejections", opb.ListRejectionsRequest, False,
            _ser(opb.ListRejectionsRequest(since_ms=0, limit=5),
                 opb.ListRejectionsRequest(since_ms=-(2**63), limit=2**32 - 1))),
    ]


RPCS = tuple(r.method for r in rpc_table([b"x"]))

# Status codes that bad input may legitimately get. INTERNAL and UNKNOWN never.
ALLOWED_CODES = frozenset(
    {
        "OK", "INVALID_ARGUMENT", "UNAUTHENTICATED", "PERMISSION_DENIED", "NOT_FOUND", "OUT_OF_RANGE",
        "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "CANCELLED", "DEADLINE_EXCEEDED",
    }
)


@dataclass(frozen=True, slots=True)
class Outcome:
    method: str
    code: str
    details: str
    auth: str


class RpcFuzzer:
    """Sends raw bodies over a real channel and classifies the status.

    ``auth`` is one of ``none`` (no credentials), ``raw`` (a valid call signature over
    the exact bytes sent, which is what call-auth v3 binds) or ``canonical`` (a call
    signature over the deterministic re-serialization: a non-canonical body then fails
    ``bad-call-signature``, since the exchange never re-serializes). Calls are signed
    for the exchange named ``origin``.
    """

    def __init__(
        self, target: str, signers: dict[str, Signer], stream_timeout_s: float = 3.0,
        origin: str = "trustwire.invalid/exchange",
    ) -> None:
        import grpc

        self._grpc = grpc
        self.channel = grpc.insecure_channel(
            target, options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
        )
        self._signers = signers
        self._origin = origin
        self._stream_timeout_s = stream_timeout_s
        self.calls = 0
        self.codes: dict[str, int] = {}

    def close(self) -> None:
        self.channel.close()

    def metadata(self, rpc: Rpc, body: bytes, auth: str, principal: str) -> list[tuple[str, str]]:
        from exchange.core.callauth import sign_call

        if auth == "none":
            return []
        signed = body
        if auth == "canonical":
            try:
                signed = rpc.request.FromString(body).SerializeToString(deterministic=True)  # type: ignore[attr-defined]
            except Exception:  # not parseable: sign the raw bytes instead
                signed = body
        return sign_call(self._signers[principal], principal, rpc.method, self._origin, signed)

    def call(self, rpc: Rpc, body: bytes, auth: str, principal: str = "alice", timeout_s: float = 10.0) -> Outcome:
        grpc = self._grpc
        md = self.metadata(rpc, body, auth, principal)
        self.calls += 1
        try:
            if rpc.streaming:
                stream = self.channel.unary_stream(rpc.method)(body, metadata=md, timeout=self._stream_timeout_s)
                try:
                    for _ in zip(range(2), stream):  # a page or two, then hang up
                        pass
                finally:
                    stream.cancel()
                code = stream.code()
                details = stream.details() or ""
                if code == grpc.StatusCode.CANCELLED and details == "Locally cancelled by application!":
                    code = grpc.StatusCode.OK
            else:
                self.channel.unary_unary(rpc.method)(body, metadata=md, timeout=timeout_s)
                code, details = grpc.StatusCode.OK, ""
        except grpc.RpcError as exc:
            code, details = exc.code(), exc.details() or ""  # type: ignore[attr-defined]
        name = code.name if code is not None else "OK"
        self.codes[name] = self.codes.get(name, 0) + 1
        return Outcome(rpc.method, name, details, auth)


# --------------------------------------------------------------------------------------------
# Regression vectors
# --------------------------------------------------------------------------------------------

REGRESSIONS = Path(__file__).resolve().parents[1] / "tests" / "fuzz" / "regressions"


def save_vector(target: str, data: bytes, note: str, directory: Path = REGRESSIONS) -> Path:
    """Keep a crashing input as a regression vector (named after its content hash)."""
    directory.mkdir(parents=True, exist_ok=True)
    name = f"{target}-{hashlib.sha256(data).hexdigest()[:12]}.json"
    path = directory / name
    path.write_text(
        json.dumps({"target": target, "input_hex": data.hex(), "note": note, "found_at": time.strftime("%Y-%m-%d")}, indent=2)
        + "\n"
    )
    return path


def load_vectors(directory: Path = REGRESSIONS) -> Iterator[tuple[Path, dict[str, str]]]:
    for path in sorted(directory.glob("*.json")):
        yield path, json.loads(path.read_text())


def replay_vector(vector: dict[str, str]) -> bool:
    """Run a parser vector; RPC vectors (target ``rpc:<method>``) are replayed by the caller."""
    return check_parser(vector["target"], bytes.fromhex(vector["input_hex"]))

