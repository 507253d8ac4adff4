"""The signal-type contract every plug-in implements.

A type owns its value grammar (:meth:`SignalType.normalize`), how a bank matches it
(:attr:`SignalType.matcher` and :meth:`SignalType.lookups`), which of the member's
content it is compared with (:attr:`SignalType.content`), an optional media hasher
(:attr:`SignalType.digest` or :meth:`SignalType.hash_media`) and its
python-threatexchange name (:attr:`SignalType.pytx_name`). Nothing outside a type's
module tests a type name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import ClassVar

from exchange.core.errors import InvalidValue, NonNormalizedValue

__all__ = [
    "CURRENT_RULE", "Content", "ContentHash", "HEX", "LEGACY_RULE", "MAX_VALUE_LENGTH", "Matcher", "OpaqueType",
    "RULES", "SignalType",
]

MAX_VALUE_LENGTH = 4096
HEX = re.compile(r"[0-9a-f]*")

# Value-rule versions (PROTOCOL.md §5): a signal names the rule its value was
# normalized under (``Signal.value_rule``; absent = rule 1), so an entry keeps
# verifying under its own rule after the rules tighten.
LEGACY_RULE = 1
CURRENT_RULE = 2
RULES = (LEGACY_RULE, CURRENT_RULE)


class Matcher(StrEnum):
    """How a member's bank matches content against a type's values."""

    EXACT = "exact"  # the (type, value) index, through the type's lookups()
    HAMMING = "hamming"  # 256-bit perceptual hashes, in the bank's Hamming index
    SUBSTRING = "substring"  # text keywords and phrases
    SCAN = "scan"  # the type's own distance() against every live signal of the type
    NONE = "none"  # unknown types: carried, verified, never matched


class Content(StrEnum):
    """Which of the member's own content a newly banked signal is re-matched against."""

    MEDIA = "media"  # hashes of files the member already matched (the content store)
    ACCOUNT = "account"  # the member's accounts, through its account-lookup hook
    NONE = "none"  # values matched on demand only (urls, domains, text)


@dataclass(frozen=True, slots=True)
class ContentHash:
    """One hash of one piece of the member's media, as a value of ``type``."""

    type: str
    value: str
    quality: int | None = None


class SignalType:
    """Base class: subclasses set ``name`` and implement :meth:`normalize`."""

    name: ClassVar[str]
    matcher: ClassVar[Matcher] = Matcher.EXACT
    content: ClassVar[Content] = Content.NONE
    examples: ClassVar[tuple[tuple[str, str], ...]] = ()
    bad_examples: ClassVar[tuple[str, ...]] = ()
    # media hashing: a hashlib algorithm streamed over the file's bytes, for files
    # with one of ``media_suffixes`` (None: every file); or override hash_media().
    digest: ClassVar[str | None] = None
    media_suffixes: ClassVar[frozenset[str] | None] = None
    # hashes under this quality are stored but never matched
    min_quality: ClassVar[int] = 0
    # the content-hash type a new signal is re-matched against (default: its own name)
    stored_as: ClassVar[str | None] = None
    # the python-threatexchange signal type this maps to (None: pytx cannot match it)
    pytx_name: ClassVar[str | None] = None

    def normalize(self, raw: str) -> str:
        """Return the canonical form of ``raw`` under the current rule or raise
        InvalidValue (for signals and for the member's content alike)."""
        raise NotImplementedError

    def normalize_under(self, raw: str, rule: int) -> str:
        """The canonical form under value rule ``rule`` (types whose canonical form
        changed between rules override this)."""
        return self.normalize(raw)

    def restrict(self, value: str) -> None:
        """Rule-2 limits on a *signal's* canonical value (not on content): raise
        BroadValue for a value that would match too much."""

    def admit(self, value: str) -> None:
        """The exchange's admission policy for a new signal value beyond its rule
        (data that may change over time, such as the Public Suffix List): raise
        BroadValue. Verifiers never apply it, so old entries keep verifying."""

    def check(self, value: str, rule: int = CURRENT_RULE) -> None:
        """Raise unless ``value`` is a valid signal value in canonical form under ``rule``."""
        if self.normalize_under(value, rule) != value:
            raise NonNormalizedValue(
                f"{self.name} value is not in canonical form; normalize it before signing"
            )
        if rule >= CURRENT_RULE:
            self.restrict(value)

    def lookups(self, value: str) -> list[tuple[str, str]]:
        """The exact (type, value) keys a piece of content with this value matches."""
        return [(self.name, value)]

    def distance(self, signal_value: str, content_value: str) -> int | None:
        """How far content is from a signal, None for no match (``SUBSTRING`` and
        ``SCAN`` matchers; a ``SCAN`` type overrides it)."""
        if self.matcher is Matcher.SUBSTRING:
            return 0 if signal_value in content_value else None
        return 0 if signal_value == content_value else None

    def quality_flag(self, value: str) -> str | None:
        """A flag for a value too poor to index (kept, counted, never matched)."""
        return None

    def hashes_media(self, path: Path) -> bool:
        """True if this type hashes the file at ``path``."""
        if self.digest is None and type(self).hash_media is SignalType.hash_media:
            return False
        return self.media_suffixes is None or path.suffix.lower() in self.media_suffixes

    def hash_media(self, path: Path) -> ContentHash | None:
        """Hash a file this type cannot hash as a plain digest (None: not hashable)."""
        return None

    def content_type(self) -> str:
        """The content-hash type this type's signals are compared with."""
        return self.stored_as or self.name

    def pytx_value(self, value: str) -> str:
        """The python-threatexchange signal string for a normalized value."""
        return value


class OpaqueType(SignalType):
    """A type this code does not know: carried and verified, never matched."""

    matcher = Matcher.NONE

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]

    def normalize(self, raw: str) -> str:
        if not raw or len(raw) > MAX_VALUE_LENGTH:
            raise InvalidValue(f"value must be 1..{MAX_VALUE_LENGTH} characters")
        return raw
