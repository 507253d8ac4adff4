"""Record verification: the Node member (interop/node) against the Python SDK, same records.

    python bench/bench_node_verify.py [--records 3000]

Both verify the same ledger (key events, then signals) end to end: record and envelope
decoding with the canonical checks, the Ed25519 signature, the entry rules, the key
directory and sharing rules. Baseline, measured in the same run: raw Ed25519
verifications per second (libsodium via PyNaCl, one core). Prints records/s and the
ratios; asserts nothing (the machine is shared: read ratios, not seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from exchange.core.dsse import sign_envelope  # noqa: E402
from exchange.core.entries import encode_entry, ms_to_timestamp  # noqa: E402
from exchange.core.keys import Signer, verify_signature  # noqa: E402
from exchange.core.records import encode_record  # noqa: E402
from exchange.core.verify import EntryVerifier  # noqa: E402
from exchange.pb.trustwire.v1 import entries_pb2 as pb  # noqa: E402

NODE_DIR = Path(__file__).resolve().parents[1] / "interop" / "node"
T0 = 1_767_225_600_000


def ledger(count: int) -> tuple[Signer, list[bytes]]:
    operator, alice = Signer.from_seed(b"o" * 32), Signer.from_seed(b"a" * 32)
    ts = ms_to_timestamp(T0)
    events = [
        pb.KeyEvent(created_at=ts, group_created=pb.GroupCreated(group_id="all", display_name="All",
                                                                  max_tlp=pb.TLP_AMBER)),
        pb.KeyEvent(created_at=ts, member_enrolled=pb.MemberEnrolled(member_id="alice", display_name="Alice",
                                                                      groups=["all"], role=pb.ROLE_MEMBER)),
        pb.KeyEvent(created_at=ts, key_added=pb.KeyAdded(member_id="alice", public_key=alice.public_key,
                                                          valid_from=ts)),
    ]
    envs = [sign_envelope(*encode_entry(e), operator).raw for e in events]
    for i in range(count):
        s = pb.Signal(signal_id=f"s{i}", member_id="alice", type="md5", value=f"{i:032x}", labels=["spam"],
                      confidence=80, severity=pb.SEVERITY_HIGH, created_at=ts,
                      sharing=pb.Sharing(groups=["all"], tlp=pb.TLP_GREEN))
        envs.append(sign_envelope(*encode_entry(s), alice).raw)
    return operator, [encode_record(i, T0 + i, env) for i, env in enumerate(envs)]


def baseline(seconds: float = 1.0) -> float:
    signer = Signer.from_seed(b"b" * 32)
    msg = b"x" * 200
    sig = signer.sign(msg)
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        verify_signature(signer.public_key, msg, sig)
        n += 1
    return n / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3000)
    args = parser.parse_args()
    node = shutil.which("node")
    if node is None:
        print("node is required", file=sys.stderr)
        return 2
    operator, records = ledger(args.records)
    base = baseline()
    verifier = EntryVerifier(operator.public_key)
    start = time.perf_counter()
    for raw in records:
        verifier.verify(raw)
    python_rate = len(records) / (time.perf_counter() - start)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "records.hex"
        path.write_text("\n".join(r.hex() for r in records))
        out = subprocess.run([node, str(NODE_DIR / "bin" / "bench-verify.js"), str(path), operator.public_key.hex()],
                             capture_output=True, text=True, check=True)
    result = json.loads(out.stdout)
    node_rate = result["verified"] / (result["ms"] / 1000)
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; {len(records)} records")
    print(f"baseline  raw Ed25519 verify (PyNaCl, 1 core)  {base:10.0f}/s  1.00")
    print(f"python    EntryVerifier.verify                {python_rate:10.0f}/s  {python_rate / base:.2f}")
    print(f"node      interop/node Verifier.verify        {node_rate:10.0f}/s  {node_rate / base:.2f}")
    print(f"node / python                                              {node_rate / python_rate:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
