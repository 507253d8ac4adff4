"""Matching the member's own content on demand: files (hashed by every signal type's
media hasher, recorded in the content store) and accounts (by indicator value, or
through the account hook over the whole bank). Every match is routed by policy."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from clients.accounts import account_ref, lookup_accounts
from clients.bank import Bank, Match
from clients.content import ContentStore
from clients.ingest import Ingester
from clients.media import MediaHashes, hash_file, iter_files
from clients.policy import Decision
from clients.routing import Router
from clients.store import MemberStore
from exchange.core.signals import Account

__all__ = ["ContentMatcher", "FileMatches"]


@dataclass(frozen=True, slots=True)
class FileMatches:
    hashes: MediaHashes
    matches: list[tuple[Match, Decision]]


class ContentMatcher:
    def __init__(
        self,
        store: MemberStore,
        bank: Bank,
        content: ContentStore,
        router: Router,
        ingester: Ingester,
        clock_ms: Callable[[], int],
    ) -> None:
        self._store = store
        self._bank = bank
        self._content = content
        self._router = router
        self._ingester = ingester
        self._clock_ms = clock_ms

    def match_files(
        self, paths: Iterable[str | Path], progress: Callable[[Path], None] | None = None
    ) -> list[FileMatches]:
        """Hash files (directories recursively), record their hashes, match and route them."""
        results = []
        for path in iter_files(paths):
            h = hash_file(path)
            with self._store.transaction():
                self._content.put(h.path, h.hashes, self._clock_ms())
                self._store.after_commit(functools.partial(self._ingester.content_changed, h))
                pairs = [self._router.decide_and_route(m) for m in self._bank.match_media(h)]
            results.append(FileMatches(h, pairs))
            if progress is not None:
                progress(path)
        return results

    def match_accounts(self, internal_id: str, indicators: Iterable[str]) -> list[tuple[Match, Decision]]:
        """Match one of the member's own accounts by its indicator values; matches are
        queued as ``account:<internal_id>``."""
        pairs: list[tuple[Match, Decision]] = []
        with self._store.transaction():
            for value in indicators:
                for m in self._bank.match_value(Account.name, value, account_ref(internal_id)):
                    pairs.append(self._router.decide_and_route(m))
        return pairs

    def rematch_accounts(self) -> int:
        """Run the account hook over every live account signal in the bank; returns new
        queue items."""
        now = self._clock_ms()
        added = 0
        for s in self._bank.signals_of_type(Account.name, live_only=True):
            if not s.live_at(now):
                continue
            ids = lookup_accounts(self._ingester.account_lookup, s.value, s.publisher, s.signal_id)
            with self._store.transaction():
                added += sum(self._router.route(Match(content_ref=account_ref(i), signal=s)) for i in ids)
        return added
