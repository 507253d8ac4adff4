"""Fault campaign: real ``trustwire serve`` processes (SQLite engine) on 127.0.0.1, hurt on purpose.

    python -m reliability.faults                      # every scenario, default sizes
    python -m reliability.faults --scenario kill9 --cycles 10
    python -m reliability.faults --scenario disk-full  # needs root (a tmpfs mount)

Scenarios (each ends with nothing acknowledged lost, a clear error and a clean restart):

* ``kill9``: members publish batches concurrently; the exchange gets SIGKILL while a
  batch is in flight, is restarted on the same files, and must hold every acknowledged
  entry exactly once at its receipt index, contiguously; re-publishing is idempotent;
  ``trustwire audit verify --ledger`` passes (every signature, every checkpoint).
* ``disk-full``: the ledger lives on a small tmpfs; a ballast file fills it; publishing
  fails RESOURCE_EXHAUSTED (never INTERNAL), reads go on; once the ballast is deleted
  publishing resumes, and a restart holds everything acknowledged.
* ``corrupt-ledger``: bytes flipped in a record, in a b-tree page, the header zeroed,
  the file truncated: ``trustwire serve`` refuses to start, exit code 8, one line
  ``trustwire: error: …`` on stderr, and never serves a rewritten history.
* ``corrupt-tree``: the Merkle tree files damaged or deleted: rebuilt from the ledger at
  start, proofs verify again; a damaged checkpoint store (the signed notes) is refused.

Prints one JSON summary; exit code 0 when every scenario held.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from clients.member import MemberClient  # noqa: E402
from exchange.core.errors import TrustwireError  # noqa: E402
from exchange.core.records import Receipt  # noqa: E402
from reliability.harness import Book, ExchangeProcess, check_ledger  # noqa: E402

GROUP = "all-members"


def _md5(text: str) -> str:
    import hashlib

    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - a sample value, not security


def _member_client(ex: ExchangeProcess, name: str, signer: object) -> MemberClient:
    return MemberClient(
        ex.target, member_id=name, signer=signer, operator_key=ex.operator.public_key, log_key=ex.log_key  # type: ignore[arg-type]
    )


class Publisher(threading.Thread):
    """Publishes batches of fresh signals until stopped or the exchange stops answering."""

    def __init__(self, ex: ExchangeProcess, name: str, signer: object, batch: int, pause_s: float, tag: str) -> None:
        super().__init__(daemon=True, name=f"publisher-{name}")
        self.client = _member_client(ex, name, signer)
        self.name_ = name
        self.batch = batch
        self.pause_s = pause_s
        self.tag = tag
        self.book = Book()
        self.in_flight = threading.Event()
        self.stop = threading.Event()
        self.error: str | None = None
        self.seq = 0

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                entries = []
                for _ in range(self.batch):
                    sid = f"{self.name_}-{self.tag}-{self.seq}"
                    self.seq += 1
                    entries.append(self.client.signal("md5", _md5(sid), groups=[GROUP], signal_id=sid))
                envelopes = [self.client.sign(e) for e in entries]
                self.in_flight.set()
                try:
                    outcomes = self.client.publish_envelopes(envelopes, batch_size=len(envelopes))
                except TrustwireError as exc:
                    self.book.in_doubt.extend(envelopes)
                    self.book.refused[exc.status] = self.book.refused.get(exc.status, 0) + 1
                    self.error = f"{exc.status}: {exc.message}"
                    if exc.status in ("UNAVAILABLE",) and "could not commit" not in exc.message:
                        return  # the exchange is gone
                    time.sleep(self.pause_s)
                    continue
                finally:
                    self.in_flight.clear()
                for env, outcome in zip(envelopes, outcomes):
                    if isinstance(outcome, Receipt):
                        self.book.acked[env] = outcome.index
                    else:
                        self.book.refused[outcome.status] = self.book.refused.get(outcome.status, 0) + 1
                time.sleep(self.pause_s)
        finally:
            self.client.close()


def _audit(ex: ExchangeProcess) -> dict[str, object]:
    proc = ex.audit_offline()
    if proc.returncode != 0:
        raise AssertionError(f"audit verify failed ({proc.returncode}): {proc.stdout[-2000:]} {proc.stderr[-2000:]}")
    report = json.loads(proc.stdout)
    return {"entries": report["entries"], "checkpoints": report["checkpoints"], "ok": report["ok"]}


# -- kill -9 mid-batch -----------------------------------------------------------------------


def kill9(directory: Path, cycles: int = 2, members: int = 3, batch: int = 50, min_acked: int = 300) -> dict[str, object]:
    ex = ExchangeProcess(directory / "kill9").start()
    names = [f"pub{i}" for i in range(members)]
    signers = ex.enrol({n: [GROUP] for n in names}, [(GROUP, "amber")])
    book = Book()
    kills = []
    try:
        for cycle in range(cycles):
            pubs = [Publisher(ex, n, signers[n], batch, 0.005, f"c{cycle}") for n in names]
            for p in pubs:
                p.start()
            deadline = time.monotonic() + 60
            while sum(len(p.book.acked) for p in pubs) < min_acked and time.monotonic() < deadline:
                time.sleep(0.02)
            while not any(p.in_flight.is_set() for p in pubs) and time.monotonic() < deadline:
                time.sleep(0.001)
            in_flight = sum(p.in_flight.is_set() for p in pubs)
            ex.kill9()
            for p in pubs:
                p.stop.set()
                p.join(timeout=60)
                book.merge(p.book)
            t0 = time.monotonic()
            ex.start()
            restart_s = time.monotonic() - t0
            counts = check_ledger(ex.all_records(), book)
            kills.append({"cycle": cycle, "batches_in_flight_at_kill": in_flight, "restart_s": round(restart_s, 2), **counts})
        # re-publishing is idempotent: acknowledged entries keep their receipts
        outcomes = _republish(ex, signers, names, list(book.acked)[:1000])
        wrong = [o for env, o in outcomes if not isinstance(o, Receipt) or o.index != book.acked[env]]
        if wrong:
            raise AssertionError(f"re-publishing acknowledged entries gave {wrong[:3]}")
        head_before = len(ex.all_records())
        in_doubt = list(book.in_doubt)
        landed = _republish(ex, signers, names, in_doubt)
        if not all(isinstance(o, Receipt) for _, o in landed):
            raise AssertionError(f"re-publishing in-doubt entries failed: {[o for _, o in landed if not isinstance(o, Receipt)][:3]}")
        records = ex.all_records()
        final = check_ledger(records, book)
        if len(records) - head_before > len(in_doubt):
            raise AssertionError("re-publishing added more entries than were in doubt")
        code = ex.stop()
        if code != 0:
            raise AssertionError(f"clean shutdown exited {code}: {ex.stderr[-2000:]}")
        audit = _audit(ex)
        return {"cycles": kills, "final": final, "republished": len(outcomes) + len(landed), "audit": audit, "lost": 0}
    finally:
        if ex.alive():
            ex.kill9()


def _republish(ex: ExchangeProcess, signers: dict[str, object], names: list[str], envelopes: list[bytes]) -> list[tuple[bytes, object]]:
    """Publish envelopes again as their own publishers (the signal's member_id)."""
    from exchange.core.dsse import Envelope
    from exchange.core.entries import decode_entry

    groups: dict[str, list[bytes]] = {}
    for env in envelopes:
        e = Envelope.decode(env)
        _, entry = decode_entry(e.payload_type, e.payload)
        groups.setdefault(entry.member_id, []).append(env)  # type: ignore[union-attr]
    out: list[tuple[bytes, object]] = []
    for member, envs in groups.items():
        client = _member_client(ex, member, signers[member])
        try:
            out.extend(zip(envs, client.publish_envelopes(envs, batch_size=200)))
        finally:
            client.close()
    return out


# -- disk full -------------------------------------------------------------------------------


def can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(tempfile.mkdtemp(prefix="tw-mount-probe-"))
    try:
        ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True).returncode == 0
        if ok:
            subprocess.run(["umount", str(probe)], capture_output=True)
        return ok
    finally:
        probe.rmdir()


def disk_full(directory: Path, size_mb: int = 8) -> dict[str, object]:
    mnt = directory / "small-disk"
    mnt.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(mnt)], check=True)
    ex = ExchangeProcess(mnt / "exchange")
    try:
        ex.start()
        signers = ex.enrol({"filler": [GROUP]}, [(GROUP, "amber")])
        client = _member_client(ex, "filler", signers["filler"])
        book = Book()

        def publish_batch(tag: str, n: int) -> TrustwireError | None:
            entries = [client.signal("md5", _md5(f"{tag}-{i}"), groups=[GROUP], signal_id=f"{tag}-{i}") for i in range(n)]
            envelopes = [client.sign(e) for e in entries]
            try:
                outcomes = client.publish_envelopes(envelopes)
            except TrustwireError as exc:
                book.in_doubt.extend(envelopes)
                return exc
            for env, o in zip(envelopes, outcomes):
                if isinstance(o, Receipt):
                    book.acked[env] = o.index
                else:
                    return o  # type: ignore[return-value]
            return None

        for b in range(10):
            assert publish_batch(f"warm-{b}", 50) is None
        ballast = mnt / "ballast"
        errors: dict[str, int] = {}
        first_error = ""
        rounds = []
        # each round leaves a different sliver of space, so the disk fills up in a different
        # place each time: the ledger's WAL, the tree files or the checkpoint store
        for r, keep in enumerate((96 << 10, 48 << 10, 24 << 10, 12 << 10, 6 << 10, 3 << 10, 1 << 10, 0)):
            _fill(mnt, ballast, keep_bytes=keep)
            failed = 0
            for b in range(100):
                err = publish_batch(f"full-{r}-{b}", 20)
                if err is not None:
                    errors[err.status] = errors.get(err.status, 0) + 1
                    first_error = first_error or f"{err.status}: {err.message}"
                    failed += 1
                    if failed >= 3:
                        break
            if not ex.alive():
                raise AssertionError(f"the exchange died on a full disk: {ex.stderr[-2000:]}")
            reads_ok = len(ex.all_records()) >= len(book.acked)  # reads go on
            ballast.unlink()
            resumed: TrustwireError | None = None
            for attempt in range(50):  # the checkpointer retries every second
                resumed = publish_batch(f"after-{r}-{attempt}", 20)
                if resumed is None:
                    break
                time.sleep(0.2)
            if resumed is not None:
                raise AssertionError(f"publishing did not resume after space was freed: {resumed}")
            _wait_checkpoint(ex, len(ex.all_records()))
            rounds.append({"left_bytes": keep, "refused_batches": failed, "reads_while_full": reads_ok})
        if not errors:
            raise AssertionError("the disk never filled up")
        if set(errors) - {"RESOURCE_EXHAUSTED", "UNAVAILABLE"}:
            raise AssertionError(f"disk full gave unexpected statuses {errors}: {first_error}")
        acked_when_full = len(book.acked)
        checkpointer_errors = ex.stderr.count("checkpointing failed")
        client.close()
        check_ledger(ex.all_records(), book)
        code = ex.stop()
        if code != 0:
            raise AssertionError(f"clean shutdown exited {code}: {ex.stderr[-2000:]}")
        ex.start()
        final = check_ledger(ex.all_records(), book)
        ex.stop()
        audit = _audit(ex)
        return {
            "filesystem": f"tmpfs {size_mb} MiB", "errors_when_full": errors, "first_error": first_error,
            "rounds": rounds, "acked": acked_when_full, "checkpointer_errors_logged": checkpointer_errors,
            "final": final, "audit": audit, "lost": 0,
        }
    finally:
        if ex.alive():
            ex.kill9()
        subprocess.run(["umount", str(mnt)], capture_output=True)


def _fill(mnt: Path, ballast: Path, keep_bytes: int) -> None:
    st = os.statvfs(mnt)
    free = st.f_bavail * st.f_frsize
    with ballast.open("wb") as f:
        remaining = max(0, free - keep_bytes)
        chunk = b"\0" * (1 << 20)
        while remaining > 0:
            n = min(len(chunk), remaining)
            try:
                f.write(chunk[:n])
                f.flush()
            except OSError:
                break
            remaining -= n


# -- corruption ------------------------------------------------------------------------------


def _prepared(directory: Path, entries: int = 600) -> tuple[ExchangeProcess, list[str]]:
    """An exchange directory with ``entries`` signals, shut down cleanly (WAL folded in)."""
    ex = ExchangeProcess(directory).start()
    signers = ex.enrol({"pub0": [GROUP]}, [(GROUP, "amber")])
    client = _member_client(ex, "pub0", signers["pub0"])
    values = [_md5(f"corrupt-{i}") for i in range(entries)]
    try:
        outcomes = client.publish(
            [client.signal("md5", v, groups=[GROUP], signal_id=f"sig-{i}") for i, v in enumerate(values)], batch_size=100
        )
        assert all(isinstance(o, Receipt) for o in outcomes)
        _wait_checkpoint(ex, entries)
    finally:
        client.close()
        if ex.alive():
            code = ex.stop()
            assert code == 0, f"clean shutdown exited {code}"
    return ex, values


def _wait_checkpoint(ex: ExchangeProcess, size: int, timeout: float = 30.0) -> None:
    from exchange.pb.trustwire.v1 import audit_pb2 as apb

    client = ex.audit_client()
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if client._audit.GetCheckpoint(apb.GetCheckpointRequest(), timeout=10).size >= size:
                return
            time.sleep(0.05)
    finally:
        client.close()
    raise AssertionError(f"no checkpoint covering {size} entries")


def _copy(src: ExchangeProcess, directory: Path) -> ExchangeProcess:
    shutil.copytree(src.directory, directory)
    ex = ExchangeProcess(directory)
    ex.log_key = src.log_key
    return ex


def _refuses(ex: ExchangeProcess) -> dict[str, object]:
    code, out, err = ex.run_to_exit(timeout=30)
    lines = [line for line in err.splitlines() if line.strip()]
    if code != 8:
        raise AssertionError(f"a corrupt ledger must be refused with exit code 8, got {code}: {err[-3000:]}")
    if "Traceback" in err or not lines or not lines[-1].startswith("trustwire: error: "):
        raise AssertionError(f"expected one clear error line, got: {err[-3000:]}")
    if "listening" in out:
        raise AssertionError("the exchange served a corrupt ledger")
    return {"exit_code": code, "error": lines[-1]}


def _flip(path: Path, offset: int, mask: int = 0x01) -> None:
    with path.open("r+b") as f:
        f.seek(offset)
        b = f.read(1)
        f.seek(offset)
        f.write(bytes([b[0] ^ mask]))


LEDGER_CORRUPTIONS: dict[str, Callable[[Path, list[str]], None]] = {
    # a byte of a stored record (inside the signed envelope): SQLite itself cannot notice
    "record-byte": lambda db, values: _flip(db, db.read_bytes().index(values[len(values) // 2].encode()) + 3),
    # the b-tree page header of page 2 (a table or index page)
    "btree-page-header": lambda db, values: [_flip(db, 4096 + i, 0xFF) for i in range(0, 8)],  # type: ignore[func-returns-value]
    # the page type byte of a page in the middle of the file, and of the last page
    "middle-page-header": lambda db, values: _flip(db, (db.stat().st_size // 4096 // 2) * 4096, 0x5A),
    "last-page-header": lambda db, values: _flip(db, db.stat().st_size - 4096, 0x5A),
    "zeroed-header": lambda db, values: db.write_bytes(bytes(100) + db.read_bytes()[100:]),
    "truncated-half": lambda db, values: os.truncate(db, (db.stat().st_size // 2) // 4096 * 4096),
    "truncated-to-last-page": lambda db, values: os.truncate(db, db.stat().st_size - 4096),
}


def corrupt_ledger(directory: Path, entries: int = 600) -> dict[str, object]:
    base, values = _prepared(directory / "base", entries)
    results: dict[str, object] = {}
    for name, damage in LEDGER_CORRUPTIONS.items():
        ex = _copy(base, directory / name)
        damage(ex.ledger, values)
        try:
            results[name] = _refuses(ex)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
    return results


TREE_CORRUPTIONS: dict[str, Callable[[Path], None]] = {
    "leaf-byte": lambda tree: _flip(tree / "level-00.bin", 32 * 5 + 7),
    "inner-node-byte": lambda tree: _flip(tree / "level-02.bin", 32 * 3 + 1),
    "truncated-leaves": lambda tree: os.truncate(tree / "level-00.bin", 32 * 100 + 13),
    "deleted": lambda tree: shutil.rmtree(tree),
    "garbage-level": lambda tree: (tree / "level-01.bin").write_bytes(os.urandom(32 * 1000)),
}


def corrupt_tree(directory: Path, entries: int = 600) -> dict[str, object]:
    from exchange.core.logview import LogView
    from exchange.pb.trustwire.v1 import audit_pb2 as apb

    base, _ = _prepared(directory / "base", entries)
    results: dict[str, object] = {}
    for name, damage in TREE_CORRUPTIONS.items():
        ex = _copy(base, directory / f"tree-{name}")
        damage(Path(str(ex.ledger) + ".audit") / "tree")
        t0 = time.monotonic()
        ex.start()
        restart_s = time.monotonic() - t0
        try:
            client = ex.audit_client()
            try:
                note = client.checkpoint()
                view = LogView(ex.log_key)
                view.advance(note, 0, [])
                size = view.trusted.size if view.trusted else 0
                records = list(client.records())
                for index in range(size):  # every proof: a damaged node sits on some paths only
                    proof = client._audit.GetInclusionProof(apb.GetInclusionProofRequest(index=index, tree_size=size), timeout=10)
                    view.check_inclusion(records[index], index, size, list(proof.hashes))
            finally:
                client.close()
        finally:
            assert ex.stop() == 0
        results[name] = {"rebuilt_and_proofs_verify": True, "restart_s": round(restart_s, 2), "audit": _audit(ex)}
    ex = _copy(base, directory / "checkpoints-db")
    cp_db = Path(str(ex.ledger) + ".audit") / "checkpoints.db"
    cp_db.write_bytes(b"garbage" * 100)
    results["checkpoint-store-garbage"] = _refuses(ex)
    return results


SCENARIOS: dict[str, Callable[..., dict[str, object]]] = {
    "kill9": kill9,
    "disk-full": disk_full,
    "corrupt-ledger": corrupt_ledger,
    "corrupt-tree": corrupt_tree,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reliability.faults", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=[*SCENARIOS, "all"], default="all")
    parser.add_argument("--cycles", type=int, default=5, help="kill9: kill/restart cycles (default 5)")
    parser.add_argument("--dir", type=Path, help="work directory (default: a fresh temporary one)")
    parser.add_argument("--json-out", type=Path)
    args = parser.parse_args(argv)
    work = args.dir or Path(tempfile.mkdtemp(prefix="tw-faults-"))
    summary: dict[str, object] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "cpus": os.cpu_count()}
    ok = True
    for name, run in SCENARIOS.items():
        if args.scenario not in ("all", name):
            continue
        if name == "disk-full" and not can_mount():
            summary[name] = {"skipped": "needs root and mount (tmpfs); tests/faults covers ENOSPC in-process"}
            continue
        t0 = time.monotonic()
        try:
            kwargs = {"cycles": args.cycles} if name == "kill9" else {}
            summary[name] = {"ok": True, "seconds": 0.0, **run(work / name, **kwargs)}
        except AssertionError as exc:
            ok = False
            summary[name] = {"ok": False, "failure": str(exc)}
        summary[name]["seconds"] = round(time.monotonic() - t0, 1)  # type: ignore[index]
    summary["ok"] = ok
    text = json.dumps(summary, indent=2, default=str)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
