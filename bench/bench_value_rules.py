"""What value rule 2 costs (issue 12), as ratios to rule 1 measured in the same run:
``url`` normalization (rule 2 adds the userinfo and IPv4 steps to every pass) and
``text`` matching (whole words of the phrase instead of a substring scan), plus the
Public Suffix List lookups a ``domain``/``url`` content lookup now makes.

    .venv/bin/python bench/bench_value_rules.py [--signals 5000] [--urls 5000]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable

from exchange.core.signals import CURRENT_RULE, LEGACY_RULE, signal_type
from exchange.core.signals import suffixes
from exchange.core.signals import text as text_rules


def _best(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--signals", type=int, default=5000, help="text signals scanned per lookup")
    ap.add_argument("--urls", type=int, default=5000, help="URLs normalized")
    args = ap.parse_args(argv)
    rng = random.Random(12)
    vocab = ["buy", "cheap", "followers", "free", "likes", "crypto", "giveaway", "click", "here", "now", "win"]
    phrases = [" ".join(rng.choice(vocab) for _ in range(rng.randint(2, 4))) for _ in range(args.signals)]
    content = " ".join(rng.choice(vocab) for _ in range(60))
    text = signal_type("text")

    def substring() -> int:
        return sum(1 for p in phrases if p in content)

    def whole_words() -> int:
        return sum(1 for p in phrases if text.distance(p, content) is not None)

    def cold() -> int:
        text_rules.words.cache_clear()
        text_rules._spaced.cache_clear()  # noqa: SLF001 (the bench measures the cache's worth)
        return whole_words()

    base, new, first = _best(substring), _best(whole_words), _best(cold)
    print(f"text: {args.signals} signals scanned: substring {base * 1e3:.2f} ms (baseline), "
          f"whole words {new * 1e3:.2f} ms (ratio {new / base:.1f}x; {first * 1e3:.1f} ms with no cached words)")

    url = signal_type("url")
    raws = [f"HTTP://User@Host{i % 97}.Example.COM:80/a/../b/{i}?q={i}#f" for i in range(args.urls)]
    r1 = _best(lambda: [url.normalize_under(r, LEGACY_RULE) for r in raws])
    r2 = _best(lambda: [url.normalize_under(r, CURRENT_RULE) for r in raws])
    print(f"url: {args.urls} normalized: rule 1 {r1 * 1e3:.1f} ms (baseline), rule 2 {r2 * 1e3:.1f} ms, "
          f"ratio {r2 / r1:.2f}x")

    domain = signal_type("domain")
    hosts = [f"a{i}.b.example{i % 50}.co.uk" for i in range(args.urls)]
    exact = _best(lambda: [[(domain.name, h)] for h in hosts])

    def psl_cold() -> object:
        suffixes.registrable_domain.cache_clear()
        return [domain.lookups(h) for h in hosts]

    cold_psl, psl = _best(psl_cold), _best(lambda: [domain.lookups(h) for h in hosts])
    print(f"domain: {args.urls} lookups: {psl * 1e3:.1f} ms with the Public Suffix List, cached "
          f"({cold_psl / args.urls * 1e6:.1f} µs each uncached; a bare key list {exact * 1e3:.2f} ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
