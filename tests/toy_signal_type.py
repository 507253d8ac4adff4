"""A toy signal type, complete in one module: what a new type plug-in looks like.

``toy_blake2s`` is the BLAKE2s digest of any file: 64 lowercase hex characters,
matched exactly, hashed from the member's media by its ``digest``.
"""

from __future__ import annotations

from exchange.core.signals import Content
from exchange.core.signals.digests import HexDigest


class ToyBlake2s(HexDigest):
    name = "toy_blake2s"
    digits = 64
    digest = "blake2s"
    content = Content.MEDIA
    examples = (("AB" * 32, "ab" * 32),)
    bad_examples = ("ab", "zz" * 32)
