"""Account indicators without identifiers in clear.

E-mail addresses, phone numbers and usernames are normalized and keyed-hashed
(HMAC-SHA256) under the task-force secret, which members hold and the exchange never
sees. Members compute the same value for their own users and match exactly; nobody
without the secret can test a guess against the stream.

Turning a shared indicator into a queue item about *your* account
-----------------------------------------------------------------
Give the client a lookup hook: ``MemberClient(..., account_lookup=hook)``. For every
live ``account`` signal the client verifies (on sync, and for signals already banked
when you call :meth:`clients.member.MemberClient.rematch_accounts`), it calls
``hook(indicator)`` with an :class:`AccountIndicator` (platform, kind and the HMAC or
opaque id: never an identifier in clear) and expects the member's own internal
account ids back (an empty iterable when the indicator is not one of its users). Each
id becomes a match with ``content_ref = "account:<internal id>"`` that goes through
the policy into the queue like any other match, and is withdrawn when the signal is
retracted or expires.

The ready-made hook :class:`AccountDirectory` keeps only HMACs: fill it with
``directory.add(internal_id, kind, identifier)`` for your users (it HMACs the
identifier with the task-force secret at once and forgets it) and pass it as the hook.

Nothing in the SDK logs identifiers, HMACs of identifiers or internal ids: the
client logs counts and the signal's publisher/id only, and a failing hook is logged
by exception type alone (its message could carry an identifier).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from exchange.core.errors import InvalidValue
from exchange.core.signals import Account

__all__ = [
    "AccountDirectory",
    "AccountIndicator",
    "AccountLookup",
    "account_ref",
    "account_value",
    "lookup_accounts",
    "normalize_identifier",
]

log = logging.getLogger(__name__)

ACCOUNT_REF_PREFIX = "account:"

_PHONE_JUNK = re.compile(r"[\s().\-/]")


def normalize_identifier(kind: str, identifier: str) -> str:
    text = unicodedata.normalize("NFKC", identifier).strip()
    if kind == "email":
        if text.count("@") != 1 or text.startswith("@") or text.endswith("@"):
            raise InvalidValue("not an e-mail address")
        return text.casefold()
    if kind == "phone":
        digits = _PHONE_JUNK.sub("", text)
        if digits.startswith("00"):
            digits = "+" + digits[2:]
        if not re.fullmatch(r"\+[1-9][0-9]{6,14}", digits):
            raise InvalidValue("phone numbers are shared in international form, e.g. +15551234567")
        return digits
    if kind == "username":
        name = text.lstrip("@").casefold()
        if not name or any(c.isspace() for c in name):
            raise InvalidValue("usernames are a single word")
        return name
    raise InvalidValue(f"no identifier normalization for kind {kind!r}")


def account_value(platform: str, kind: str, identifier: str, secret: bytes | None = None) -> str:
    """The normalized ``account`` signal value for an identifier.

    ``id`` kinds are shared as given; ``email``, ``phone`` and ``username`` are
    HMAC-SHA256(secret, "<kind>:<normalized identifier>") in hex.
    """
    kind = kind.lower()
    if kind in Account.hashed_kinds:
        if not secret:
            raise InvalidValue(f"{kind} indicators need the task-force secret")
        message = f"{kind}:{normalize_identifier(kind, identifier)}".encode()
        identifier = hmac.new(secret, message, hashlib.sha256).hexdigest()
    return Account().normalize(f"{platform}:{kind}:{identifier}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountIndicator:
    """A shared account indicator, as the lookup hook receives it.

    ``identifier`` is the HMAC-SHA256 hex for ``email``/``phone``/``username`` kinds
    and the platform's opaque id for ``id``. ``repr`` leaves the identifier out so an
    indicator never lands in a log by accident.
    """

    platform: str
    kind: str
    identifier: str = field(repr=False)
    publisher: str = ""
    signal_id: str = ""

    @classmethod
    def parse(cls, value: str, publisher: str = "", signal_id: str = "") -> AccountIndicator:
        """From a normalized ``account`` signal value ``platform:kind:identifier``."""
        platform, kind, identifier = Account().normalize(value).split(":", 2)
        return cls(platform=platform, kind=kind, identifier=identifier, publisher=publisher, signal_id=signal_id)

    @property
    def value(self) -> str:
        return f"{self.platform}:{self.kind}:{self.identifier}"


AccountLookup = Callable[[AccountIndicator], Iterable[str]]
"""The member's hook: an indicator in, the member's own internal account ids out."""


def account_ref(internal_id: str) -> str:
    """The queue ``content_ref`` of a member's own account."""
    return ACCOUNT_REF_PREFIX + internal_id


def lookup_accounts(hook: AccountLookup | None, value: str, publisher: str, signal_id: str) -> list[str]:
    """The member's own account ids for an account signal's value, through its hook.

    Never logs the indicator or the ids; a failing hook is logged by type only.
    """
    if hook is None:
        return []
    try:
        indicator = AccountIndicator.parse(value, publisher=publisher, signal_id=signal_id)
        return sorted({str(i) for i in hook(indicator)})
    except Exception as exc:  # noqa: BLE001 - member code; its message may hold an identifier
        log.warning("account lookup hook failed for signal %s/%s (%s)", publisher, signal_id, type(exc).__name__)
        return []


class AccountDirectory:
    """A lookup hook over the member's own users that stores HMACs only.

        directory = AccountDirectory(secret, platform="examplechat")
        directory.add("user-8812", "email", "Someone@Example.com")
        client = MemberClient(..., account_lookup=directory)
    """

    def __init__(self, secret: bytes, platform: str) -> None:
        if not secret:
            raise InvalidValue("an account directory needs the task-force secret")
        self._secret = secret
        self.platform = Account().normalize(f"{platform}:id:x").split(":", 1)[0]
        self._ids: dict[str, set[str]] = {}

    def add(self, internal_id: str, kind: str, identifier: str) -> None:
        value = account_value(self.platform, kind, identifier, self._secret)
        self._ids.setdefault(value, set()).add(internal_id)

    def __len__(self) -> int:
        return sum(len(v) for v in self._ids.values())

    def __repr__(self) -> str:
        return f"AccountDirectory(platform={self.platform!r}, entries={len(self)})"

    def __call__(self, indicator: AccountIndicator) -> list[str]:
        return sorted(self._ids.get(indicator.value, ()))
