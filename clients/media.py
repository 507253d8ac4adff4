"""Hashing a platform's own media: MD5 and SHA-256 for any file, PDQ for images.

PDQ hex follows Meta's reference (the 256-bit hash printed most-significant bit
first, as python-threatexchange does); the Hamming distance of two hashes is the
popcount of their XOR. PDQ quality (0–100) comes with every image hash; callers
treat hashes under ``MIN_PDQ_QUALITY`` as unreliable and do not match them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["MediaHashes", "hash_file", "iter_files", "pdq_distance", "pdq_hex", "MIN_PDQ_QUALITY"]

MIN_PDQ_QUALITY = 50
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".wmv", ".flv", ".3gp", ".mpg", ".mpeg"})


@dataclass(frozen=True, slots=True, kw_only=True)
class MediaHashes:
    path: str
    md5: str
    sha256: str
    pdq: str | None = None
    pdq_quality: int | None = None
    is_video: bool = False


def pdq_hex(bits: Iterable[int]) -> str:
    """Reference hex of a pdqhash bit vector (first element = most significant bit)."""
    return "%064x" % int("".join("1" if b else "0" for b in bits), 2)


def pdq_distance(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def _pdq(path: Path) -> tuple[str, int] | None:
    import pdqhash
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError):
        return None
    bits, quality = pdqhash.compute(rgb)
    return pdq_hex(bits), int(quality)


def hash_file(path: str | Path) -> MediaHashes:
    """Hash one file; PDQ only for images Pillow can decode."""
    p = Path(path)
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            md5.update(chunk)
            sha.update(chunk)
    pdq = _pdq(p) if p.suffix.lower() in IMAGE_SUFFIXES else None
    return MediaHashes(
        path=str(p),
        md5=md5.hexdigest(),
        sha256=sha.hexdigest(),
        pdq=pdq[0] if pdq else None,
        pdq_quality=pdq[1] if pdq else None,
        is_video=p.suffix.lower() in VIDEO_SUFFIXES,
    )


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
