"""PDQ, Meta's 256-bit perceptual image hash: matched by Hamming distance.

The media hasher decodes images with Pillow and hashes them with ``pdqhash``; the
hex follows Meta's reference (most significant bit first, as python-threatexchange
prints it). Hashes under quality 50 are stored but not matched. A value far from
the ~128 set bits of every real PDQ hash (the all-zero hash of a blank image, for
instance) is flagged degenerate: banked and counted, never indexed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from exchange.core.signals.base import Content, ContentHash, Matcher
from exchange.core.signals.digests import HexDigest

__all__ = ["Pdq", "IMAGE_SUFFIXES", "MIN_PDQ_QUALITY", "DEGENERATE_PDQ", "pdq_hex"]

MIN_PDQ_QUALITY = 50
DEGENERATE_PDQ = "degenerate-pdq"
BITS = 256
DEGENERATE_MARGIN = 48
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})


def pdq_hex(bits: Iterable[int]) -> str:
    """Reference hex of a pdqhash bit vector (first element = most significant bit)."""
    return "%064x" % int("".join("1" if b else "0" for b in bits), 2)


class Pdq(HexDigest):
    """256-bit PDQ perceptual hash, matched by Hamming distance (default 31)."""

    name = "pdq"
    digits = 64
    matcher = Matcher.HAMMING
    content = Content.MEDIA
    media_suffixes = IMAGE_SUFFIXES
    min_quality = MIN_PDQ_QUALITY
    pytx_name = "pdq"
    examples = (
        (
            "F8F8F0CEE0F4A84F06370A22038F63F0B36E2ED596621E1D33E6B39C4E9C9B22",
            "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
        ),
    )
    bad_examples = ("f8f8f0cee0f4a84f", "not-a-hash")

    def quality_flag(self, value: str) -> str | None:
        ones = int(value, 16).bit_count()
        return DEGENERATE_PDQ if abs(ones - BITS // 2) > DEGENERATE_MARGIN else None

    def hash_media(self, path: Path) -> ContentHash | None:
        """PDQ of an image Pillow can decode (None otherwise), with its quality."""
        import numpy as np
        import pdqhash
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                rgb = np.asarray(img.convert("RGB"))
        except (UnidentifiedImageError, OSError):
            return None
        bits, quality = pdqhash.compute(rgb)
        return ContentHash(self.name, pdq_hex(bits), int(quality))
