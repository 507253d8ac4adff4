"""Keywords and phrases: matched as a run of whole words of the member's normalized text.

A *word* is a maximal run of code points whose Unicode general category is a letter
(L*), a mark (M*) or a number (N*); everything else separates words. A text signal
matches content whose words contain the signal's words as a contiguous run, so
``cheap followers`` matches ``Buy CHEAP followers!`` but not ``cheapfollowers``.
Value rule 2 refuses a phrase with fewer than :data:`MIN_WORD_CHARS` word code points,
and the matcher never matches such a (rule-1) value (PROTOCOL.md §5.5).
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache

from exchange.core.errors import BroadValue, InvalidValue
from exchange.core.signals.base import Matcher, SignalType

__all__ = ["MIN_WORD_CHARS", "Text", "words"]

MIN_WORD_CHARS = 4


@lru_cache(maxsize=4096)
def words(value: str) -> tuple[str, ...]:
    """The words of a normalized text value, in order."""
    out: list[str] = []
    current: list[str] = []
    for ch in value:
        if unicodedata.category(ch)[0] in "LMN":
            current.append(ch)
        elif current:
            out.append("".join(current))
            current = []
    if current:
        out.append("".join(current))
    return tuple(out)


@lru_cache(maxsize=65536)
def _spaced(value: str) -> str | None:
    """The value's words, each between single spaces (None for a phrase too short to
    match): a contiguous run of whole words is then a plain substring test."""
    found = words(value)
    return None if _broad(found) else " " + " ".join(found) + " "


def _broad(phrase: tuple[str, ...]) -> bool:
    return sum(len(w) for w in phrase) < MIN_WORD_CHARS


class Text(SignalType):
    """A keyword or phrase: NFKC, case-folded, inner whitespace collapsed."""

    name = "text"
    matcher = Matcher.SUBSTRING
    max_length = 1024
    pytx_name = "trend_query"
    examples = (("  Buy  CHEAP\tfollowers ", "buy cheap followers"), ("Straße", "strasse"))
    bad_examples = ("", "   ", "x" * 1025)
    # valid under rule 1, refused as signal values under rule 2 (too few word characters)
    broad_examples = ("a", "x y", "!!!!!", "ab-c")

    def normalize(self, raw: str) -> str:
        # NFKC again after casefold: casefold can leave a non-NFKC string (e.g. "ß\u0301"
        # -> "ss\u0301"), which would not be a fixed point of this normalizer.
        folded = unicodedata.normalize("NFKC", raw).casefold()
        value = " ".join(unicodedata.normalize("NFKC", folded).split())
        if not value or len(value) > self.max_length:
            raise InvalidValue("text must be 1..1024 characters after normalization")
        return value

    def restrict(self, value: str) -> None:
        if _broad(words(value)):
            raise BroadValue(
                f"text needs at least {MIN_WORD_CHARS} letters or digits: a shorter phrase matches nearly everything"
            )

    def distance(self, signal_value: str, content_value: str) -> int | None:
        phrase = _spaced(signal_value)  # None: a rule-1 value too short to match safely
        text = _spaced(content_value)  # None: too short to hold any phrase that may match
        return 0 if phrase is not None and text is not None and phrase in text else None

    def pytx_value(self, value: str) -> str:
        """A pytx trend query whose one term is the case-insensitive regex of the phrase."""
        return json.dumps({"and": [{"or": [f"regex-/(?i){re.escape(value)}/"]}], "not": []})
