"""PDQ matching at 1M and 10M hashes: Trustwire's PdqIndex against python-threatexchange's
PDQIndex, on the same hashes, the same queries and the same core, in the same run.

    python bench/bench_pdq.py                  # 1M (about 3 minutes on 2 cores)
    python bench/bench_pdq.py --sizes 1000000 10000000   # adds 10M (~10 GB RAM for pytx)
    python bench/bench_pdq.py --sizes 10000000 --skip-pytx --skip-exact   # 10M, ours only (~5 min)
    git archive main | tar -x -C /tmp/main-tree && cp -r exchange/pb /tmp/main-tree/exchange/ && \
        python bench/bench_pdq.py --skip-pytx --skip-exact \
        --baseline-tree /tmp/main-tree     # main's index against this one, same data, back to back
    python bench/bench_pdq.py ... --data-dir /tmp/pdq-data   # hashes, queries and brute-force
        answers generated once and reused by later runs (10M: saves minutes a run)

Queries are realistic, not random hashes (random 256-bit hashes never have neighbours):
- PDQ hashes of altered copies (downscaled, JPEG re-encoded, cropped, brightened) of
  generated images whose originals are in the bank;
- neighbours planted at every Hamming distance 1..31 from bank hashes (and 32..40,
  which must *not* match);
- a few random hashes (the common "no match" path).

Each index is built and queried in its own subprocess pinned to one core (faiss with
one thread), so resident memory is the RSS growth of building that index alone (the
input hashes are loaded before the baseline is taken; pytx's hex-string entries,
which its index keeps, count against it; the input array stays alive until the
measurement, so what the index copies of it counts once). Recall is measured against brute force
over the whole bank. Exact-match (md5) lookups: the member's SQLite bank against
pytx's in-memory dict index. Results go to bench/results/pdq-<time>.json.

Trustwire's index is measured three ways: one query per call (``search``) and in batches
of 16 and 256 (``search_many``, what the match service's batch lookups use); all exact.
Each way runs ``--rounds`` passes (3), the ways in turn, and counts its best pass (a
neighbour's burst on a shared machine slows a pass, never speeds one); every pass's
figure is printed too.
Its resident memory is taken after the first lookups, so it includes numba (imported
on the first lookup) and the compiled kernels. Each
figure is also given per CPU-second of the worker (``cpu_queries_per_s``), which a busy
shared machine distorts less than wall time; report ``uptime`` with the figures.

Targets (issue 15): 4,000 lookups/s per core at 10M, recall 1.0 against brute force,
<= 640 MiB resident at 10M; pytx's index side by side in the same run.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

THRESHOLD = 31
RESULTS = REPO / "bench" / "results"


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def _pin() -> None:
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    except (AttributeError, OSError):
        pass
    try:
        import faiss

        faiss.omp_set_num_threads(1)
    except ImportError:
        pass


def _words_hex(codes: np.ndarray) -> list[str]:
    raw = codes.astype(">u8").tobytes().hex()
    return [raw[i : i + 64] for i in range(0, len(raw), 64)]


# -- data --------------------------------------------------------------------------------


def _images(n: int, seed: int) -> list[Any]:
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        small = (rng.random((12, 12, 3)) * 255).astype("uint8")
        img = Image.fromarray(small).resize((384, 384), Image.BICUBIC).filter(ImageFilter.GaussianBlur(4))
        out.append(img)
    return out


def _pdq(img: Any) -> str:
    import pdqhash

    from clients.media import pdq_hex

    bits, _quality = pdqhash.compute(np.asarray(img.convert("RGB")))
    return pdq_hex(bits)


def _alterations(img: Any) -> list[Any]:
    import io

    from PIL import ImageEnhance

    w, h = img.size
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=35)
    jpeg = __import__("PIL.Image", fromlist=["Image"]).open(io.BytesIO(buf.getvalue()))
    return [
        img.resize((w // 2, h // 2)),
        jpeg,
        img.crop((w // 20, h // 20, w - w // 20, h - h // 20)),
        ImageEnhance.Brightness(img).enhance(1.15),
    ]


def make_data(size: int, directory: Path, seed: int = 7) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**64, size=(size, 4), dtype=np.uint64, endpoint=False)
    originals = _images(150, seed)
    slots = rng.choice(size, len(originals), replace=False)
    queries: list[tuple[str, str, int]] = []  # (hex, kind, planted distance)
    from clients.pdq_index import pdq_words

    for slot, img in zip(slots, originals, strict=True):
        codes[slot] = pdq_words(_pdq(img))
        for alt in _alterations(img):
            queries.append((_pdq(alt), "altered", -1))
    for d in list(range(1, 32)) * 16 + list(range(32, 41)) * 4:
        base = codes[rng.integers(0, size)].copy()
        for bit in rng.choice(256, d, replace=False):
            base[bit // 64] ^= np.uint64(1) << np.uint64(63 - bit % 64)
        queries.append((_words_hex(base[None, :])[0], "planted", d))
    for _ in range(100):
        queries.append((_words_hex(rng.integers(0, 2**64, size=(1, 4), dtype=np.uint64))[0], "random", -1))
    order = rng.permutation(len(queries))
    queries = [queries[i] for i in order]
    np.save(directory / f"codes-{size}.npy", codes)
    (directory / f"queries-{size}.json").write_text(json.dumps(queries))
    return {"size": size, "queries": len(queries)}


# -- workers (one subprocess per index and size) ----------------------------------------


def _breakdown(index: Any) -> dict[str, int]:
    """Bytes of each of the index's arrays (either layout: flat or two-level directories)."""
    n = index.rows
    segs = list(index._segments)
    out = {
        "codes": n * 32,
        "ids": n * 4,
        "died": _written_pages(index._died[:n]) if hasattr(index, "_died") else 0,
        "reverse_map": int(index._row_of.nbytes),
        "postings": sum(int(s.postings.nbytes) for s in segs),
        "directories": sum(int(s.directory.nbytes if hasattr(s, "directory") else s.offsets.nbytes) for s in segs),
    }
    return out


def _written_pages(died: np.ndarray) -> int:
    """Bytes of the 4 KiB pages of ``died`` holding a non-zero entry: what it costs in
    resident memory where it is allocated zeroed (a live row is 0) and only dead rows
    are written; every page where a live row is all ones (older trees)."""
    per_page = 4096 // died.itemsize
    return int(len(np.unique(np.flatnonzero(died) // per_page))) * 4096


def worker(kind: str, size: int, directory: Path, tree: Path | None = None, rounds: int = 1) -> dict[str, Any]:
    _pin()
    codes = np.load(directory / f"codes-{size}.npy")
    queries = [q for q, _, _ in json.loads((directory / f"queries-{size}.json").read_text())]
    gc.collect()
    base = _rss()
    t0 = time.perf_counter()
    if kind == "trustwire":
        if tree is not None:  # another checkout's index (e.g. main), same data, same run
            sys.path[:] = [str(tree)] + [p for p in sys.path if Path(p or ".").resolve() != REPO]
        from clients.pdq_index import PdqIndex

        index = PdqIndex(threshold=THRESHOLD)
        index.add_many(np.arange(size, dtype=np.int64), codes)
        index.fold(force=True)

        def query(h: str) -> list[int]:
            return [i for i, _ in index.search(h)]

    else:
        from threatexchange.signal_type.pdq.pdq_index import PDQIndex

        index = PDQIndex.build(zip(_words_hex(codes), range(size), strict=True))

        def query(h: str) -> list[int]:
            return [int(m.metadata) for m in index.query(h)]

    build_s = time.perf_counter() - t0
    for h in queries[:20]:  # warm up (Trustwire's first lookup imports numba and loads its kernels: counted)
        query(h)
    gc.collect()
    rss = _rss() - base  # the input array stays alive until here: it is not the index's memory
    index_bytes = index.nbytes if kind == "trustwire" else None
    breakdown = _breakdown(index) if kind == "trustwire" else None
    del codes
    modes: dict[str, Callable[[], list[list[int]]]] = {"": lambda: [sorted(query(h)) for h in queries]}
    if kind == "trustwire":
        for size_b in (16, 256):
            modes[f"batch{size_b}_"] = lambda b=size_b: [  # type: ignore[misc]
                sorted(i for i, _ in hits) for k in range(0, len(queries), b)
                for hits in index.search_many(queries[k : k + b])]
    rates: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    answers: dict[str, list[list[int]]] = {}
    for _ in range(rounds):  # modes in turn, each round: a neighbour's burst hits one round, not one mode
        for mode, run in modes.items():
            t0, c0 = time.perf_counter(), time.process_time()
            answers[mode] = run()
            rates[mode].append((len(queries) / (time.perf_counter() - t0), len(queries) / (time.process_time() - c0)))
    found = answers[""]
    elapsed, cpu = len(queries) / max(w for w, _ in rates[""]), len(queries) / max(c for _, c in rates[""])
    batched: dict[str, Any] = {}
    for mode in list(modes)[1:]:
        batched |= {
            f"{mode}queries_per_s": round(max(w for w, _ in rates[mode]), 1),
            f"{mode}cpu_queries_per_s": round(max(c for _, c in rates[mode]), 1),
            f"{mode}agrees": answers[mode] == found,
        }
    batched["cpu_queries_per_s_rounds"] = {
        mode.rstrip("_") or "single": [round(c) for _, c in r] for mode, r in rates.items()}
    return {
        "index": kind,
        "size": size,
        "build_s": round(build_s, 2),
        "rss_bytes": rss,
        "index_array_bytes": index_bytes,
        "index_array_breakdown": breakdown,
        "queries": len(queries),
        "queries_per_s": round(len(queries) / elapsed, 1),
        "cpu_queries_per_s": round(len(queries) / cpu, 1),
        **batched,
        "found": found,
    }


def truth(size: int, directory: Path) -> list[list[tuple[int, int]]]:
    from clients.pdq_index import brute_force, pdq_words

    codes = np.load(directory / f"codes-{size}.npy")
    out = []
    for q, _, _ in json.loads((directory / f"queries-{size}.json").read_text()):
        rows, d = brute_force(codes, pdq_words(q), THRESHOLD)
        out.append(sorted(zip(rows.tolist(), d.tolist())))
    return out


def exact_match(size: int, directory: Path) -> dict[str, Any]:
    """md5 lookups: the SQLite bank (what a member queries) vs pytx's in-memory dict index."""
    _pin()
    from threatexchange.signal_type.signal_base import TrivialSignalTypeIndex

    from clients.bank import Bank
    from clients.store import MemberStore

    rng = np.random.default_rng(11)
    values = [f"{v:032x}" for v in rng.integers(0, 2**63, size=size)]
    store = MemberStore(directory / f"bank-{size}.db")
    with store.transaction() as c:
        c.executemany(
            "INSERT INTO signals (publisher, signal_id, idx, type, value, labels, confidence, severity, groups, tlp,"
            " created_at_ms) VALUES ('m', ?, ?, 'md5', ?, '[]', 50, 2, '[]', 2, 0)",
            ((str(i), i, v) for i, v in enumerate(values)),
        )
    bank = Bank(store)
    probes = [values[i] for i in rng.integers(0, size, 5000)] + [f"{v:032x}" for v in rng.integers(0, 2**63, 5000)]
    t0 = time.perf_counter()
    hits = sum(bool(bank.lookup("md5", v)) for v in probes)
    bank_qps = len(probes) / (time.perf_counter() - t0)
    store.close()
    trivial: TrivialSignalTypeIndex[int] = TrivialSignalTypeIndex.build(zip(values, range(size), strict=True))
    t0 = time.perf_counter()
    hits2 = sum(bool(trivial.query(v)) for v in probes)
    dict_qps = len(probes) / (time.perf_counter() - t0)
    assert hits == hits2 == 5000
    return {"size": size, "bank_sqlite_qps": round(bank_qps), "pytx_dict_qps": round(dict_qps)}


def _data(size: int, directory: Path, keep: bool) -> list[list[tuple[int, int]]]:
    """Hashes and queries in ``directory`` and their brute-force answers: generated, or
    those a previous run kept there (``keep``)."""
    answers = directory / f"expected-{size}.json"
    if keep and answers.exists() and (directory / f"codes-{size}.npy").exists():
        print(f"== {size:,} hashes: reusing the data in {directory}", file=sys.stderr)
        return [[(r, dist) for r, dist in q] for q in json.loads(answers.read_text())]
    print(f"== {size:,} hashes: generating data and queries", file=sys.stderr)
    make_data(size, directory)
    expected = truth(size, directory)
    if keep:
        answers.write_text(json.dumps(expected))
    return expected


def _run_worker(args: list[str]) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, __file__, *args], capture_output=True, text=True, check=False, timeout=3600
    )
    if proc.returncode != 0:
        raise SystemExit(f"worker {args} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _recall(found: list[list[int]], expected: list[list[tuple[int, int]]], kinds: list[tuple[str, str, int]]) -> dict[str, Any]:
    want = got = 0
    extra = 0
    by_distance: dict[int, list[int]] = {}
    for f, e, (_, kind, d) in zip(found, expected, kinds, strict=True):
        e_ids = {i for i, _ in e}
        f_ids = set(f)
        want += len(e_ids)
        got += len(e_ids & f_ids)
        extra += len(f_ids - e_ids)
        if kind == "planted":
            slot = by_distance.setdefault(d, [0, 0])
            slot[0] += len(e_ids)
            slot[1] += len(e_ids & f_ids)
    return {
        "recall": round(got / want, 6) if want else 1.0,
        "expected_matches": want,
        "false_positives": extra,
        "planted_recall_by_distance": {d: round(g / w, 4) if w else None for d, (w, g) in sorted(by_distance.items())},
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000])
    ap.add_argument("--skip-pytx", action="store_true", help="only Trustwire's index (no baseline)")
    ap.add_argument("--skip-exact", action="store_true", help="no md5 (exact) comparison")
    ap.add_argument("--worker", choices=["trustwire", "pytx", "exact"], help=argparse.SUPPRESS)
    ap.add_argument("--dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--baseline-tree", type=Path, nargs="+", default=[],
                    help="also measure the index of other checkouts (e.g. `git archive main`), same data, same run;"
                         " ratios are to the first")
    ap.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--rounds", type=int, default=3, help="lookup passes per mode (single, batches), in turn;"
                    " each figure is the best pass (a busy shared machine slows passes, never speeds them)")
    ap.add_argument("--data-dir", type=Path, help="keep the generated hashes, queries and brute-force answers here"
                    " and reuse them in later runs (same seed, same data)")
    args = ap.parse_args()
    if args.worker:
        if args.worker == "exact":
            result = exact_match(args.sizes[0], args.dir)
        else:
            result = worker(args.worker, args.sizes[0], args.dir, args.tree, args.rounds)
        print(json.dumps(result))
        return 0

    RESULTS.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "pinned_to_one_core": True, "load_at_start": os.getloadavg()},
        "runs": [],
    }
    with tempfile.TemporaryDirectory(prefix="bench-pdq-") as tmp:
        d = args.data_dir or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        for size in args.sizes:
            expected = _data(size, d, keep=args.data_dir is not None)
            kinds = [tuple(q) for q in json.loads((d / f"queries-{size}.json").read_text())]
            run: dict[str, Any] = {"size": size, "queries": len(kinds)}
            workers: list[tuple[str, str, list[str]]] = [("trustwire", "trustwire", [])]
            workers += [] if args.skip_pytx else [("pytx", "pytx", [])]
            for i, tree in enumerate(args.baseline_tree):
                name = "baseline" if i == 0 else f"baseline{i + 1}"
                workers.insert(i, (name, "trustwire", ["--tree", str(tree.resolve())]))
            for name, kind, extra in workers:
                print(f"   building and querying {name}'s index", file=sys.stderr)
                r = _run_worker(["--worker", kind, "--sizes", str(size), "--dir", str(d), "--rounds", str(args.rounds),
                                 *extra])
                r.update(_recall(r.pop("found"), expected, kinds))
                run[name] = r
            if "baseline" in run:
                ours, base = run["trustwire"], run["baseline"]
                run["vs_baseline"] = {k: round(ours[k] / max(base[k], 1), 3) for k in (
                    "cpu_queries_per_s", "batch16_cpu_queries_per_s", "batch256_cpu_queries_per_s", "rss_bytes")}
            if size <= 1_000_000 and not args.skip_exact:
                run["exact_match"] = _run_worker(["--worker", "exact", "--sizes", str(size), "--dir", str(d)])
            if "pytx" in run:
                ours, theirs = run["trustwire"], run["pytx"]
                run["ratios"] = {
                    "queries_per_s": round(ours["queries_per_s"] / theirs["queries_per_s"], 2),
                    "cpu_queries_per_s": round(ours["cpu_queries_per_s"] / theirs["cpu_queries_per_s"], 2),
                    "rss": round(ours["rss_bytes"] / max(theirs["rss_bytes"], 1), 3),
                }
            report["runs"].append(run)
            _print(run)
            if args.data_dir is None:
                (d / f"codes-{size}.npy").unlink()
    out = RESULTS / f"pdq-{int(time.time())}.json"
    out.write_text(json.dumps(report, indent=2, sort_keys=True))
    print(f"wrote {out}", file=sys.stderr)
    return 0


def _print(run: dict[str, Any]) -> None:
    print(f"\n{run['size']:,} hashes, {run['queries']} queries (one core)")
    names = [k for k in run if k.startswith("baseline") and k != "vs_baseline"] + ["trustwire"]
    for kind in [*names, "pytx"]:
        if kind in run:
            r = run[kind]
            print(
                f"  {kind:<10} {r['queries_per_s']:>9,.0f} q/s ({r['cpu_queries_per_s']:,.0f}/cpu-s)  RSS {r['rss_bytes'] / 2**20:>7,.0f} MiB"
                f"  build {r['build_s']:>6.1f}s  recall {r['recall']:.4f} ({r['expected_matches']} expected,"
                f" {r['false_positives']} false positives)"
            )
    for (kind, size_b) in ((k, b) for k in names for b in (16, 256)):
        r = run.get(kind, {})
        if f"batch{size_b}_queries_per_s" in r:
            print(f"  {kind} batches of {size_b}: {r[f'batch{size_b}_queries_per_s']:,.0f} q/s"
                  f" ({r[f'batch{size_b}_cpu_queries_per_s']:,.0f}/cpu-s), same answers: {r[f'batch{size_b}_agrees']}")
    for kind in names:
        if "cpu_queries_per_s_rounds" in run.get(kind, {}):
            print(f"  {kind} lookups per CPU-second, each pass: {run[kind]['cpu_queries_per_s_rounds']}")
    for kind in names:
        b = run.get(kind, {}).get("index_array_breakdown")
        if b:
            print(f"  {kind} index arrays (MiB): " + ", ".join(f"{k} {v / 2**20:,.1f}" for k, v in b.items()))
    if "vs_baseline" in run:
        print(f"  trustwire / baseline: {run['vs_baseline']}")
    print(f"  load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    if "ratios" in run:
        print(f"  trustwire / pytx: {run['ratios']['queries_per_s']}x queries/s, {run['ratios']['rss']}x memory")
    if "exact_match" in run:
        e = run["exact_match"]
        print(f"  exact md5 lookups: SQLite bank {e['bank_sqlite_qps']:,}/s, pytx dict {e['pytx_dict_qps']:,}/s")


if __name__ == "__main__":
    sys.exit(main())
