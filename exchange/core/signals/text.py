"""Keywords and phrases: matched as substrings of the member's normalized text."""

from __future__ import annotations

import json
import re
import unicodedata

from exchange.core.errors import InvalidValue
from exchange.core.signals.base import Matcher, SignalType

__all__ = ["Text"]


class Text(SignalType):
    """A keyword or phrase: NFKC, case-folded, inner whitespace collapsed."""

    name = "text"
    matcher = Matcher.SUBSTRING
    max_length = 1024
    pytx_name = "trend_query"
    examples = (("  Buy  CHEAP\tfollowers ", "buy cheap followers"), ("Straße", "strasse"))
    bad_examples = ("", "   ", "x" * 1025)

    def normalize(self, raw: str) -> str:
        # NFKC again after casefold: casefold can leave a non-NFKC string (e.g. "ß\u0301"
        # -> "ss\u0301"), which would not be a fixed point of this normalizer.
        folded = unicodedata.normalize("NFKC", raw).casefold()
        value = " ".join(unicodedata.normalize("NFKC", folded).split())
        if not value or len(value) > self.max_length:
            raise InvalidValue("text must be 1..1024 characters after normalization")
        return value

    def pytx_value(self, value: str) -> str:
        """A pytx trend query whose one term is the case-insensitive regex of the phrase."""
        return json.dumps({"and": [{"or": [f"regex-/(?i){re.escape(value)}/"]}], "not": []})
