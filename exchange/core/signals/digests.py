"""Cryptographic file digests (md5, sha1, sha256, video_md5): exact match, hex values.

``md5`` and ``sha256`` hash every file the member matches; ``video_md5`` is the MD5
of video files only (python-threatexchange's type); ``sha1`` is carried and matched
by value but not computed from files.
"""

from __future__ import annotations

from typing import ClassVar

from exchange.core.errors import InvalidValue
from exchange.core.signals.base import HEX, Content, SignalType

__all__ = ["HexDigest", "Md5", "Sha1", "Sha256", "VideoMd5", "VIDEO_SUFFIXES"]

VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".wmv", ".flv", ".3gp", ".mpg", ".mpeg"})


class HexDigest(SignalType):
    """A fixed number of lowercase hex digits."""

    digits: ClassVar[int]
    content = Content.MEDIA

    def normalize(self, raw: str) -> str:
        value = raw.strip().lower()
        if len(value) != self.digits or not HEX.fullmatch(value):
            raise InvalidValue(f"{self.name} is {self.digits} hex characters")
        return value


class Md5(HexDigest):
    name = "md5"
    digits = 32
    digest = "md5"
    pytx_name = "md5"
    examples = (("D41D8CD98F00B204E9800998ECF8427E", "d41d8cd98f00b204e9800998ecf8427e"),)
    bad_examples = ("d41d8cd98f00b204e9800998ecf8427", "zz1d8cd98f00b204e9800998ecf8427e", "")


class Sha1(HexDigest):
    name = "sha1"
    digits = 40
    pytx_name = "sha1"
    examples = ((" DA39A3EE5E6B4B0D3255BFEF95601890AFD80709 ", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),)
    bad_examples = ("da39a3ee5e6b4b0d3255bfef95601890afd8070", "da39a3ee5e6b4b0d3255bfef95601890afd8070g")


class Sha256(HexDigest):
    name = "sha256"
    digits = 64
    digest = "sha256"
    pytx_name = "sha256"
    examples = (
        (
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
    )
    bad_examples = ("e3b0c442", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85x")


class VideoMd5(Md5):
    """MD5 of a video file. A new video_md5 signal is re-matched against the MD5 of
    every file already hashed; a file matches video_md5 signals only if it is a video."""

    name = "video_md5"
    media_suffixes = VIDEO_SUFFIXES
    stored_as = "md5"
    pytx_name = "video_md5"
