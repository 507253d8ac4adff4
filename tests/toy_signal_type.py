"""Toy signal types, each complete in a few lines: what a new type plug-in looks like.

``toy_blake2s`` is the BLAKE2s digest of any file: 64 lowercase hex characters,
matched exactly, hashed from the member's media by its ``digest``. ``toy_size``
brings its own matcher and media hasher.
"""

from __future__ import annotations

from pathlib import Path

from exchange.core.errors import InvalidValue
from exchange.core.signals import Content, ContentHash, Matcher, SignalType
from exchange.core.signals.digests import HexDigest


class ToyBlake2s(HexDigest):
    name = "toy_blake2s"
    digits = 64
    digest = "blake2s"
    content = Content.MEDIA
    examples = (("AB" * 32, "ab" * 32),)
    bad_examples = ("ab", "zz" * 32)


class ToyNearSize(SignalType):
    """``toy_size``: a file's size in bytes, matched within 8 bytes by the type's own
    distance (``Matcher.SCAN``), hashed by ``hash_media``."""

    name = "toy_size"
    matcher = Matcher.SCAN
    content = Content.MEDIA
    examples = (("0042", "42"),)
    bad_examples = ("-1", "x")

    def normalize(self, raw: str) -> str:
        if not raw.strip().isdigit():
            raise InvalidValue("toy_size is a decimal byte count")
        return str(int(raw))

    def distance(self, signal_value: str, content_value: str) -> int | None:
        d = abs(int(signal_value) - int(content_value))
        return d if d <= 8 else None

    def hash_media(self, path: Path) -> ContentHash | None:
        return ContentHash(self.name, str(path.stat().st_size))
