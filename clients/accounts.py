"""Account indicators without identifiers in clear.

E-mail addresses, phone numbers and usernames are normalized and keyed-hashed
(HMAC-SHA256) under the task-force secret, which members hold and the exchange never
sees. Members compute the same value for their own users and match exactly; nobody
without the secret can test a guess against the stream.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata

from exchange.core.errors import InvalidValue
from exchange.core.signals import Account

__all__ = ["account_value", "normalize_identifier"]

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
