"""Abusive-account indicators: ``platform:kind:identifier``, matched exactly.

A newly banked account signal is re-matched through the member's account-lookup
hook (``clients.accounts``), never against stored content.
"""

from __future__ import annotations

import re
from typing import ClassVar

from exchange.core.errors import InvalidValue
from exchange.core.signals.base import Content, SignalType

__all__ = ["Account"]


class Account(SignalType):
    """An abusive-account indicator: ``platform:kind:identifier``.

    ``kind`` is ``email``, ``phone`` or ``username`` (identifier = lowercase hex
    HMAC-SHA256 under the task-force secret, never the identifier in clear; see
    ``clients.accounts``) or ``id`` (the platform's own opaque account id).
    """

    name = "account"
    content = Content.ACCOUNT
    pytx_name = "account"
    hashed_kinds: ClassVar[frozenset[str]] = frozenset({"email", "phone", "username"})
    kinds: ClassVar[frozenset[str]] = hashed_kinds | {"id"}
    examples = (
        ("ExampleChat:ID:1234567", "examplechat:id:1234567"),
        (
            "examplechat:email:" + "AB" * 32,
            "examplechat:email:" + "ab" * 32,
        ),
    )
    bad_examples = (
        "examplechat:email:alice@example.com",
        "examplechat:fax:123",
        "no-separators",
        "examplechat:id:",
        "bad platform:id:1",
    )
    _PLATFORM = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}\Z")
    _ID = re.compile(r"^[\x21-\x7e]{1,256}\Z")

    def normalize(self, raw: str) -> str:
        parts = raw.strip().split(":", 2)
        if len(parts) != 3:
            raise InvalidValue("account is platform:kind:identifier")
        platform, kind, ident = parts[0].lower(), parts[1].lower(), parts[2]
        if not self._PLATFORM.match(platform):
            raise InvalidValue("account platform must be a lowercase name like 'examplechat'")
        if kind not in self.kinds:
            raise InvalidValue("account kind must be one of " + ", ".join(sorted(self.kinds)))
        if kind in self.hashed_kinds:
            ident = ident.lower()
            if len(ident) != 64 or not all(c in "0123456789abcdef" for c in ident):
                raise InvalidValue(f"{kind} identifiers are shared only as HMAC-SHA256 hex, never in clear")
        elif not self._ID.match(ident):
            raise InvalidValue("account id must be 1..256 printable characters without spaces")
        return f"{platform}:{kind}:{ident}"
