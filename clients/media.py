"""Hashing a platform's own media through the signal types' media hashers.

Every registered type that hashes files contributes one :class:`ContentHash`:
today MD5 and SHA-256 of any file, ``video_md5`` of videos and PDQ of images (with
its quality; hashes under the type's ``min_quality`` are stored but not matched).
Plain digests share one read of the file.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from exchange.core.signals import ContentHash, registered
from exchange.core.signals.digests import VIDEO_SUFFIXES
from exchange.core.signals.pdq import IMAGE_SUFFIXES, MIN_PDQ_QUALITY, pdq_hex

__all__ = [
    "ContentHash",
    "MediaHashes",
    "hash_file",
    "iter_files",
    "pdq_distance",
    "pdq_hex",
    "MIN_PDQ_QUALITY",
    "IMAGE_SUFFIXES",
    "VIDEO_SUFFIXES",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaHashes:
    """Every content hash of one file, one per type that hashes it."""

    path: str
    hashes: tuple[ContentHash, ...]
    is_video: bool = False

    def get(self, type_name: str) -> ContentHash | None:
        return next((h for h in self.hashes if h.type == type_name), None)

    def value(self, type_name: str) -> str | None:
        found = self.get(type_name)
        return None if found is None else found.value

    @property
    def md5(self) -> str:
        return self.value("md5") or ""

    @property
    def sha256(self) -> str:
        return self.value("sha256") or ""

    @property
    def pdq(self) -> str | None:
        return self.value("pdq")

    @property
    def pdq_quality(self) -> int | None:
        found = self.get("pdq")
        return None if found is None else found.quality


def pdq_distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def hash_file(path: str | Path) -> MediaHashes:
    """Hash one file with every registered type that hashes it."""
    p = Path(path)
    kinds = [k for k in registered() if k.hashes_media(p)]
    digests = {k.digest: hashlib.new(k.digest, usedforsecurity=False) for k in kinds if k.digest is not None}
    if digests:
        with p.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                for d in digests.values():
                    d.update(chunk)
    hashes: list[ContentHash] = []
    for k in kinds:
        h = ContentHash(k.name, digests[k.digest].hexdigest()) if k.digest is not None else k.hash_media(p)
        if h is not None:
            hashes.append(h)
    return MediaHashes(path=str(p), hashes=tuple(hashes), is_video=p.suffix.lower() in VIDEO_SUFFIXES)


def iter_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Files named directly, and every regular file under named directories, sorted."""
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            yield from sorted(f for f in p.rglob("*") if f.is_file())
        elif p.is_file():
            yield p
        else:
            raise FileNotFoundError(f"no such file or directory: {p}")
