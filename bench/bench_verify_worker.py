"""Verification worker CPU per record, against raw Ed25519 verify in the same run.

Builds ``--entries`` real ledger records (the key events enrolling a few members, then a
mix of their md5, sha256, pdq and url signals, signed), then times, on one thread, :func:`exchange.core.verify.
signed_passes` (what a member's verification worker runs per record), an audit worker's :meth:`exchange.core.audit.RangeVerifier.check` (the whole rule,
in order, and the leaf hashes) and a raw ``crypto_sign_open`` of the same signed
bytes. Prints µs/record of each and their ratios to raw verify (the goal is ≤ 1.25×),
and the load average. Run it from any tree: it imports the tree it sits in.

    python bench/bench_verify_worker.py --entries 20000 --rounds 3
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import nacl.bindings  # noqa: E402

from exchange.core.dsse import Envelope, pae, sign_envelope  # noqa: E402
from exchange.core.entries import encode_entry, ms_to_timestamp  # noqa: E402
from exchange.core.keys import Signer  # noqa: E402
from exchange.core.records import Record, encode_record  # noqa: E402
from exchange.core import signals  # noqa: E402
from exchange.core.acceptance import find_key  # noqa: E402
from exchange.core.audit import RangeVerifier  # noqa: E402
from exchange.core.verify import signed_passes  # noqa: E402
from exchange.pb.trustwire.v1 import entries_pb2 as pb  # noqa: E402

MEMBERS = ("alpha", "bravo", "charlie", "delta")
T0 = 1_800_000_000_000
EVENTS = 1 + 2 * len(MEMBERS)  # the key events at the start of the corpus


TYPES = ("md5", "sha256", "pdq", "url")


def _value(i: int) -> tuple[str, str]:
    h = hashlib.sha256(b"%d" % i).hexdigest()
    kind = TYPES[i % len(TYPES)]
    raw = {"md5": h[:32], "sha256": h, "pdq": h, "url": f"https://scale.example/{h[:20]}"}[kind]
    return kind, signals.signal_value(kind, raw)


def corpus(n: int) -> tuple[bytes, dict[str, tuple[str, bytes]], list[bytes]]:
    """(operator key, key table, records)."""
    operator = Signer.from_seed(b"\x0a" * 32)
    signers = {m: Signer.from_seed(hashlib.sha256(m.encode()).digest()) for m in MEMBERS}
    keys: dict[str, tuple[str, bytes]] = {s.keyid: (m, s.public_key) for m, s in signers.items()}
    t = ms_to_timestamp(T0)
    events = [pb.KeyEvent(created_at=t, group_created=pb.GroupCreated(group_id="g-one", display_name="G",
                                                                       max_tlp=pb.TLP_RED))]
    for m, signer in signers.items():
        events.append(pb.KeyEvent(created_at=t, member_enrolled=pb.MemberEnrolled(
            member_id=m, display_name=m, groups=["g-one"], role=pb.ROLE_MEMBER)))
        events.append(pb.KeyEvent(created_at=t, key_added=pb.KeyAdded(
            member_id=m, public_key=signer.public_key, valid_from=t)))
    out = [encode_record(i, T0, sign_envelope(*encode_entry(e), operator).raw) for i, e in enumerate(events)]
    for i in range(len(out), n):
        member = MEMBERS[i % len(MEMBERS)]
        kind, value = _value(i)
        s = pb.Signal(signal_id=f"s-{i}", member_id=member, type=kind, value=value, value_rule=signals.CURRENT_RULE,
                      labels=["csam"] if i % 3 else [], confidence=80, severity=pb.SEVERITY_HIGH,
                      sharing=pb.Sharing(groups=["g-one"], tlp=pb.TLP_AMBER), created_at=ms_to_timestamp(T0 + i))
        env = sign_envelope(*encode_entry(s), signers[member])
        out.append(encode_record(i, T0 + i, env.raw))
    return operator.public_key, keys, out


def raw_verify_us(operator_key: bytes, keys: dict[str, tuple[str, bytes]], records: list[bytes]) -> float:
    """Raw crypto_sign_open over exactly the signed bytes of ``records``."""
    items = []
    for raw in records:
        env = Envelope.decode(Record.decode(raw).envelope)
        items.append((env.sig + pae(env.payload_type, env.payload), find_key(env.keyid, operator_key, keys)[1]))
    start = time.thread_time()
    for sm, pk in items:
        nacl.bindings.crypto_sign_open(sm, pk)
    return (time.thread_time() - start) / len(items) * 1e6


def worker_us(operator_key: bytes, keys: dict[str, tuple[str, bytes]], records: list[bytes]) -> float:
    """A member's verification worker: the stateless half of the rule."""
    start = time.thread_time()
    flags = signed_passes(operator_key, keys, records)
    spent = time.thread_time() - start
    if flags != b"\x01" * len(records):
        raise SystemExit("a valid record failed the worker check")
    return spent / len(records) * 1e6


def audit_us(operator_key: bytes, records: list[bytes]) -> float:
    """An audit worker: the whole rule, in order, over one range (leaf hashes included)."""
    verifier = RangeVerifier(operator_key, records[:EVENTS])
    start = time.thread_time()
    result = verifier.check(0, records)
    spent = time.thread_time() - start
    if result.findings or result.verified != len(records):
        raise SystemExit(f"the audit found {result.findings[:3]}")
    return spent / len(records) * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--types", default="md5,sha256,pdq,url", help="signal types of the corpus, in turn")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one worker pass")
    args = parser.parse_args()
    global TYPES
    TYPES = tuple(args.types.split(","))
    operator_key, keys, records = corpus(args.entries)
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.runcall(signed_passes, operator_key, keys, records)
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    ratios, works, raws, audits, aratios = [], [], [], [], []
    for _ in range(args.rounds):
        r = raw_verify_us(operator_key, keys, records)
        w = worker_us(operator_key, keys, records)
        a = audit_us(operator_key, records)
        raws.append(r)
        works.append(w)
        audits.append(a)
        ratios.append(w / r)
        aratios.append(a / r)
    load = os.getloadavg()
    med = statistics.median
    print(f"{args.entries} records: raw verify {med(raws):.1f} µs/record; member worker {med(works):.1f} µs/record"
          f" ({med(ratios):.2f}× raw, rounds {[round(x, 2) for x in ratios]}); audit worker {med(audits):.1f}"
          f" µs/record ({med(aratios):.2f}× raw, rounds {[round(x, 2) for x in aratios]});"
          f" load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
