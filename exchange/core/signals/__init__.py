"""Signal types as plug-ins: one module per type or family, one registry.

Values are normalized by the publisher *before* signing; the exchange and every
consumer call :meth:`SignalType.check` and reject a value whose normalized form
differs, instead of rewriting signed bytes.

- :mod:`.base` — the contract (:class:`SignalType`, :class:`Matcher`, :class:`Content`).
- :mod:`.registry` — :func:`register`, :func:`signal_type`, :func:`normalize`,
  :func:`signal_value` (a new signal's value), :func:`admit` (the exchange's check).
- :mod:`.suffixes` — the Public Suffix List (bundled snapshot) and host suffixes.
- :mod:`.digests` (md5, sha1, sha256, video_md5), :mod:`.pdq`, :mod:`.web` (url,
  domain), :mod:`.account`, :mod:`.text`, :mod:`.vpdq` — the built-in types.

Each type lists ``examples`` (raw, normalized) and ``bad_examples``; the unit tests
and the seeds reuse them. ARCHITECTURE.md says how to add a type.
"""

from __future__ import annotations

from exchange.core.signals.account import Account
from exchange.core.signals.base import (
    CURRENT_RULE, LEGACY_RULE, MAX_VALUE_LENGTH, RULES, Content, ContentHash, Matcher, OpaqueType, SignalType,
)
from exchange.core.signals.digests import Md5, Sha1, Sha256, VideoMd5
from exchange.core.signals.pdq import Pdq
from exchange.core.signals.registry import (
    admit, normalize, register, registered, signal_type, signal_value, unregister,
)
from exchange.core.signals.text import Text
from exchange.core.signals.vpdq import Vpdq
from exchange.core.signals.web import Domain, Url

__all__ = [
    "CURRENT_RULE",
    "LEGACY_RULE",
    "RULES",
    "admit",
    "signal_value",
    "Account",
    "BUILTIN_TYPES",
    "Content",
    "ContentHash",
    "Domain",
    "MAX_VALUE_LENGTH",
    "Matcher",
    "Md5",
    "OpaqueType",
    "Pdq",
    "Sha1",
    "Sha256",
    "SignalType",
    "Text",
    "Url",
    "VideoMd5",
    "Vpdq",
    "normalize",
    "register",
    "registered",
    "signal_type",
    "unregister",
]

BUILTIN_TYPES: tuple[SignalType, ...] = (
    Md5(), Sha1(), Sha256(), Pdq(), VideoMd5(), Url(), Domain(), Account(), Text(), Vpdq(),
)
for _kind in BUILTIN_TYPES:
    register(_kind)
