"""The match service's in-memory view of the bank: every lookup is answered from memory.

SQLite (the member's state file, written by :meth:`clients.member.MemberClient.sync`)
stays the durable copy; this view is loaded from it at start and kept in step through
:meth:`clients.bank.Bank.on_change`. Exact types are a dict per type, ``text`` a
substring scan, ``pdq`` a :class:`clients.pdq_index.PdqIndex` keyed by this view's
own dense ids. One lock serializes updates and lookups; both are short.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from clients.bank import DEFAULT_PDQ_THRESHOLD, VERDICTS, BankSignal
from clients.pdq_index import PdqIndex, is_degenerate, pdq_words
from exchange.core.signals import Matcher, signal_type

__all__ = ["Hit", "MatchIndex", "host_of"]

NO_OPINIONS: Mapping[str, int] = {}


@dataclass(frozen=True, slots=True, kw_only=True)
class Hit:
    """A live signal a looked-up value matched."""

    signal: BankSignal
    distance: int
    opinions: Mapping[str, int]


def host_of(value: str) -> str | None:
    """The host of a canonical URL (``scheme://[userinfo@]host[:port]/…``)."""
    authority = value.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        return host[1:].split("]", 1)[0] or None
    return host.split(":", 1)[0] or None


def _parents(host: str) -> list[str]:
    """``a.b.example`` → ``a.b.example``, ``b.example`` (a bare TLD is never a match)."""
    labels = host.split(".")
    return [".".join(labels[i:]) for i in range(max(1, len(labels) - 1))]


class MatchIndex:
    def __init__(
        self, pdq_threshold: int = DEFAULT_PDQ_THRESHOLD, clock_ms: Callable[[], int] = lambda: int(time.time() * 1000)
    ) -> None:
        self.pdq_threshold = pdq_threshold
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._next_id = 1
        self._ids: dict[tuple[str, str], int] = {}
        self._signals: dict[int, BankSignal] = {}
        self._opinions: dict[int, Mapping[str, int]] = {}
        self._exact: dict[str, dict[str, tuple[int, ...]]] = {}
        self._text: dict[int, str] = {}
        self._pdq = PdqIndex(threshold=pdq_threshold)

    # -- updates -------------------------------------------------------------------------

    def _unlink(self, id_: int) -> None:
        old = self._signals.pop(id_, None)
        self._opinions.pop(id_, None)
        if old is None:
            return
        kind = signal_type(old.type).matcher
        if kind is Matcher.HAMMING:
            self._pdq.remove(id_)
        elif kind is Matcher.SUBSTRING:
            self._text.pop(id_, None)
        elif kind is Matcher.EXACT:
            by_value = self._exact.get(old.type, {})
            rest = tuple(i for i in by_value.get(old.value, ()) if i != id_)
            if rest:
                by_value[old.value] = rest
            else:
                by_value.pop(old.value, None)

    def _link(self, s: BankSignal, opinions: Mapping[int, int]) -> None:
        key = (s.publisher, s.signal_id)
        id_ = self._ids.get(key)
        if id_ is None:
            id_ = self._next_id
            self._next_id += 1
            self._ids[key] = id_
        else:
            self._unlink(id_)
        kind = signal_type(s.type).matcher
        if kind is Matcher.NONE or s.quality_flag is not None:
            return
        if kind is Matcher.HAMMING:
            words = pdq_words(s.value)
            if is_degenerate(words):
                return
            self._pdq.add(id_, words)
        elif kind is Matcher.SUBSTRING:
            self._text[id_] = s.value
        else:
            by_value = self._exact.setdefault(s.type, {})
            by_value[s.value] = by_value.get(s.value, ()) + (id_,)
        self._signals[id_] = s
        if opinions:
            self._opinions[id_] = {VERDICTS.get(v, str(v)): n for v, n in sorted(opinions.items())}

    def load(self, signals: Iterable[BankSignal], opinions: Mapping[tuple[str, str], Mapping[int, int]]) -> int:
        """Add many signals (at start); returns how many are matchable."""
        with self._lock:
            for s in signals:
                if s.retracted_index is None:
                    self._link(s, opinions.get((s.publisher, s.signal_id), {}))
            self._pdq.fold(force=True)
            return len(self._signals)

    def put(self, s: BankSignal | None, key: tuple[str, str], opinions: Mapping[int, int]) -> None:
        """The bank's current state of one signal (``None``: gone, e.g. compromised key)."""
        with self._lock:
            if s is None or s.retracted_index is not None or _expired(s, self._clock_ms()):
                id_ = self._ids.pop(key, None)
                if id_ is not None:
                    self._unlink(id_)
                return
            self._link(s, opinions)

    def clear(self) -> None:
        with self._lock:
            self._ids.clear()
            self._signals.clear()
            self._opinions.clear()
            self._exact.clear()
            self._text.clear()
            self._pdq = PdqIndex(threshold=self.pdq_threshold)

    # -- lookups ---------------------------------------------------------------------------

    def _hits(self, ids: Iterable[tuple[int, int]], now: int) -> list[Hit]:
        out = []
        for id_, distance in ids:
            s = self._signals.get(id_)
            if s is not None and s.live_at(now):
                out.append(Hit(signal=s, distance=distance, opinions=self._opinions.get(id_, NO_OPINIONS)))
        return out

    def lookup(self, type_name: str, value: str) -> list[Hit]:
        """Live signals matching an already-normalized value, nearest first.

        ``domain`` values also match signals for every parent domain; ``url`` values
        match URL signals exactly and domain signals for the URL's host and parents.
        """
        kind = signal_type(type_name).matcher
        now = self._clock_ms()
        with self._lock:
            if kind is Matcher.HAMMING:
                found = self._pdq.search(value, self.pdq_threshold)
            elif kind is Matcher.SUBSTRING:
                found = [(i, 0) for i, text in self._text.items() if text in value]
            elif kind is Matcher.EXACT:
                found = [(i, 0) for i in self._exact.get(type_name, {}).get(value, ())]
                host = value if type_name == "domain" else host_of(value) if type_name == "url" else None
                if host:
                    domains = self._exact.get("domain", {})
                    seen = {i for i, _ in found}
                    found += [(i, 0) for p in _parents(host) for i in domains.get(p, ()) if i not in seen]
            else:
                found = []
            hits = self._hits(found, now)
        return sorted(hits, key=lambda h: (h.distance, h.signal.index))

    def sizes(self) -> dict[str, int]:
        """Matchable signals by type (for metrics)."""
        with self._lock:
            out = {t: sum(len(ids) for ids in by_value.values()) for t, by_value in self._exact.items()}
            out["pdq"] = len(self._pdq)
            out["text"] = len(self._text)
        return out

    def __len__(self) -> int:
        return len(self._signals)


def _expired(s: BankSignal, now: int) -> bool:
    return s.valid_until_ms is not None and now >= s.valid_until_ms
