"""Previews of the member's own content for reviewers, with wellness defaults.

A queue item's ``content_ref`` is the path ``match_files`` hashed. The console shows
a file only if it lies under one of the configured media roots (no other path is
ever read) and Pillow can open it as an image. The default preview is rendered on
the server, greyscale and heavily blurred, so the clear pixels never reach the
browser until the reviewer reveals them; video is never previewed (no autoplay).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageFilter, UnidentifiedImageError

__all__ = ["MediaRoots", "render_preview"]

PREVIEW_PX = 480
BLUR_RADIUS = 24


class MediaRoots:
    """The folders whose files the console may preview."""

    def __init__(self, roots: Sequence[str | Path]) -> None:
        self._roots = tuple(Path(r).resolve() for r in roots)

    def resolve(self, content_ref: str) -> Path | None:
        """The file behind ``content_ref`` if it is a file under a media root, else None."""
        if not self._roots or not content_ref or content_ref.startswith("account:"):
            return None
        try:
            path = Path(content_ref).resolve()
        except (OSError, RuntimeError, ValueError):
            return None
        if not any(path.is_relative_to(root) for root in self._roots):
            return None
        return path if path.is_file() else None


def render_preview(path: Path, *, blur: bool, greyscale: bool) -> bytes | None:
    """A PNG preview of an image (None if it is not one), blurred and/or greyscale."""
    try:
        with Image.open(path) as img:
            img.thumbnail((PREVIEW_PX, PREVIEW_PX))
            out = img.convert("L" if greyscale else "RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None
    if blur:
        out = out.filter(ImageFilter.GaussianBlur(BLUR_RADIUS))
    buf = io.BytesIO()
    out.save(buf, format="PNG")
    return buf.getvalue()
