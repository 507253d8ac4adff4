"""The long fuzzing campaign (documented in RELIABILITY.md; CI runs the bounded tests/fuzz).

    python -m reliability.fuzz_long --minutes 30            # parsers, then every RPC
    python -m reliability.fuzz_long --minutes 5 --engine random --rpc-share 0.5

Parsers: with ``--engine atheris`` (the default when ``pip install atheris`` worked),
coverage-guided libFuzzer over every parser target of reliability/fuzzing.py, seeded
with the valid inputs; otherwise (``random``) the same mutators in a tight loop.
RPCs: an exchange on 127.0.0.1:0 (in this process) takes random, mutated and
re-signed bodies on every method, unauthenticated and call-signed; any INTERNAL or
UNKNOWN status, or any ledger change from a rejected call, is a failure.

Every failing input is written to tests/fuzz/regressions/ (replayed by the test
suite). Prints one JSON summary: inputs tried per part, statuses seen, failures.
Exit code 0 when nothing failed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(REPO))

from reliability.fuzzing import (  # noqa: E402
    ALLOWED_CODES,
    PARSERS,
    REGRESSIONS,
    check_parser,
    mutate,
    parser_seeds,
    rpc_table,
    save_vector,
    seed_envelopes,
    seed_payloads,
)

TARGETS = sorted(PARSERS)


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


# -- parsers ---------------------------------------------------------------------------------


def parsers_random(seconds: float, seed: int) -> dict[str, object]:
    rnd = random.Random(seed)
    seeds = parser_seeds()
    tried = {t: 0 for t in TARGETS}
    failures: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for target in TARGETS:
            data = mutate(rnd.choice(seeds[target]), rnd) if rnd.random() < 0.9 else rnd.randbytes(rnd.randint(0, 64))
            tried[target] += 1
            try:
                check_parser(target, data)
            except Exception as exc:  # a crash: keep it
                path = save_vector(target, data, f"fuzz_long (random): {type(exc).__name__}: {exc}"[:300])
                failures.append(str(path))
    return {"engine": "random", "inputs": sum(tried.values()), "per_target": tried, "failures": failures}


def parsers_atheris(seconds: float, seed: int) -> dict[str, object]:
    """libFuzzer in a child process (reliability/fuzz_atheris.py); an input's first byte picks the target."""
    work = Path(tempfile.mkdtemp(prefix="tw-atheris-"))
    corpus = work / "corpus"
    corpus.mkdir()
    for t_index, target in enumerate(TARGETS):
        for s_index, data in enumerate(parser_seeds()[target]):
            (corpus / f"seed-{target}-{s_index}").write_bytes(bytes([t_index]) + data)
    cmd = [
        sys.executable, "-m", "reliability.fuzz_atheris",
        f"-max_total_time={max(1, int(seconds))}", f"-seed={seed or 1}", "-max_len=4096", "-timeout=20",
        f"-artifact_prefix={work}/", "-print_final_stats=1", str(corpus),
    ]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=seconds + 300)
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr)
    cov = re.findall(r"cov: (\d+)", proc.stderr)
    failures = []
    for crash in sorted(work.glob("crash-*")) + sorted(work.glob("timeout-*")) + sorted(work.glob("oom-*")):
        data = crash.read_bytes()
        if data:
            target = TARGETS[data[0] % len(TARGETS)]
            failures.append(str(save_vector(target, data[1:], f"fuzz_long (atheris {crash.name.split('-')[0]})")))
    if proc.returncode not in (0,) and not failures:
        failures.append(f"atheris exited {proc.returncode}: {proc.stderr[-2000:]}")
    return {
        "engine": "atheris",
        "inputs": int(runs[-1]) if runs else None,
        "coverage_edges": int(cov[-1]) if cov else None,
        "corpus_files": len(list(corpus.iterdir())),
        "failures": failures,
    }


# -- RPCs ------------------------------------------------------------------------------------


def rpcs(seconds: float, seed: int) -> dict[str, object]:
    import functools

    from exchange.core.dsse import sign_envelope
    from exchange.core.entries import OPERATOR
    from exchange.core.records import Receipt
    from exchange.pb.trustwire.v1 import exchange_pb2 as xpb
    from reliability.fuzzing import RpcFuzzer
    from tests.conftest import MEMBERS, start_taskforce

    rnd = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="tw-fuzz-rpc-"))
    tf = start_taskforce(tmp)
    tf.server.core.subscribe = functools.partial(tf.server.core.subscribe, heartbeat_s=0.2)  # type: ignore[method-assign]
    # and a Subscribe that trusts a checkpoint beyond the log's waits (5 s) for a lagging replica to
    # catch up before OUT_OF_RANGE: the campaign sends thousands, so cap the waits
    tf.server.checkpoints.wait_for = _capped(tf.server.checkpoints.wait_for, 0.3)  # type: ignore[method-assign]
    failures: list[str] = []
    try:
        seeds = seed_envelopes("alice")
        published = [e for e, o in zip(seeds, tf.client("alice").publish_envelopes(seeds)) if isinstance(o, Receipt)]
        signers = {m: tf.signers[m] for m in MEMBERS}
        signers[OPERATOR] = tf.operator
        fuzzer = RpcFuzzer(tf.target, signers, stream_timeout_s=3.0, origin=tf.origin)
        table = rpc_table(published)
        payloads = seed_payloads()
        accepted_resigned = 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            rpc = rnd.choice(table)
            auth = rnd.choice(["none", "raw", "canonical"])
            principal = rnd.choice([*MEMBERS, OPERATOR])
            mode = rnd.random()
            if mode < 0.15:
                body = rnd.randbytes(rnd.randint(0, 300))
            elif mode < 0.3 and rpc.method.endswith("/Publish"):
                # a mutated payload, correctly signed: reaches decoding, validation and the rules
                payload_type, payload = rnd.choice(payloads)
                env = sign_envelope(payload_type, mutate(payload, rnd), signers["alice"]).raw
                body = xpb.PublishRequest(envelopes=[env]).SerializeToString(deterministic=True)
                auth, principal = "raw", "alice"
            else:
                body = mutate(rnd.choice(rpc.seeds), rnd)
            before = tf.ledger_snapshot()
            outcome = fuzzer.call(rpc, body, auth, principal)
            after = tf.ledger_snapshot()
            grew = after[0] - before[0]
            bad = outcome.code not in ALLOWED_CODES or after[1][: before[0]] != before[1]
            if outcome.code != "OK" and grew:
                bad = True  # a rejected call changed the ledger
            if grew and outcome.code == "OK":
                accepted_resigned += grew
            if bad:
                path = REGRESSIONS / f"rpc-long-{int(time.time() * 1000)}.json"
                path.write_text(
                    json.dumps(
                        {
                            "target": "rpc", "method": rpc.method, "auth": auth, "principal": principal,
                            "input_hex": body.hex(), "note": f"fuzz_long: {outcome.code} {outcome.details[:200]}",
                            "found_at": time.strftime("%Y-%m-%d"),
                        },
                        indent=2,
                    )
                    + "\n"
                )
                failures.append(str(path))
        health_ok = _healthy(tf)
        fuzzer.close()
        return {
            "inputs": fuzzer.calls,
            "statuses": dict(sorted(fuzzer.codes.items())),
            "accepted_valid_resigned_entries": accepted_resigned,
            "healthy_after": health_ok,
            "failures": failures,
        }
    finally:
        tf.close()


def _capped(wait_for: Callable[[int, float], Any], cap_s: float) -> Callable[[int, float], Any]:
    def capped(size: int, timeout: float) -> Any:
        return wait_for(size, min(timeout, cap_s))

    return capped


def _healthy(tf: object) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    channel = grpc.insecure_channel(tf.target)  # type: ignore[attr-defined]
    try:
        reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)
    finally:
        channel.close()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m reliability.fuzz_long", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="total wall-clock budget (default 10)")
    parser.add_argument("--engine", choices=["atheris", "random"], default="atheris" if have_atheris() else "random")
    parser.add_argument("--rpc-share", type=float, default=0.4, help="share of the time spent on RPCs (default 0.4)")
    parser.add_argument("--seed", type=int, default=int(time.time()) & 0xFFFF)
    parser.add_argument("--json-out", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    total = args.minutes * 60
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    t0 = time.monotonic()
    parser_seconds = total * (1 - args.rpc_share)
    if args.engine == "atheris" and not have_atheris():
        print("atheris is not installed (pip install atheris); use --engine random", file=sys.stderr)
        return 2
    p = parsers_atheris(parser_seconds, args.seed) if args.engine == "atheris" else parsers_random(parser_seconds, args.seed)
    r = rpcs(max(1.0, total - (time.monotonic() - t0)), args.seed)
    summary = {
        "started": started,
        "minutes": round((time.monotonic() - t0) / 60, 2),
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        "seed": args.seed,
        "parsers": p,
        "rpcs": r,
        "ok": not p["failures"] and not r["failures"] and r["healthy_after"],
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
