"""vPDQ, Meta's video hash: a PDQ hash per sampled frame, matched frame by frame.

Value grammar. ``normalize`` accepts python-threatexchange's serialization (a JSON
list of ``"pdq_hex,quality,timestamp"`` strings, what ``vpdq`` hashers print) or the
canonical form, and returns the canonical form: the *distinct* frame hashes of
quality >= 50, lowercase hex, sorted, comma-separated. vPDQ matching ignores frame
order and timestamps, deduplicates frames and drops frames under quality 50
(python-threatexchange's ``dedupe`` and ``quality_filter``), so the canonical form
keeps exactly what matching reads. A value holds at most 63 frames (the 4,096
character limit of every value): hash long videos at fewer frames per second.

Matching (python-threatexchange's thresholds, the anchor): frames match within
Hamming distance 31; a video matches a signal when at least 80% of the video's
frames match some frame of the signal and at least 0% of the signal's frames match
some frame of the video. This is a ``SCAN`` type: :meth:`Vpdq.distance` applies the
rule to one (signal, content) pair (the SDK bank and the re-match of stored videos
scan with it); the member's match service runs the same rule over an index of every
signal's frames (``clients.matchsvc.index``). :func:`match_percent` is the reference.

Media hasher: ``vpdq.computeHash`` (the ``vpdq`` package, which decodes with FFmpeg)
at one frame per second, for video files.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from exchange.core.errors import InvalidValue
from exchange.core.signals.base import HEX, MAX_VALUE_LENGTH, Content, ContentHash, Matcher, SignalType
from exchange.core.signals.digests import VIDEO_SUFFIXES

__all__ = [
    "Vpdq",
    "FRAME_DISTANCE",
    "FRAME_QUALITY",
    "QUERY_MATCH_PERCENT",
    "COMPARED_MATCH_PERCENT",
    "frames_of",
    "match_percent",
]

FRAME_DISTANCE = 31
FRAME_QUALITY = 50
QUERY_MATCH_PERCENT = 80.0
COMPARED_MATCH_PERCENT = 0.0
SECONDS_PER_HASH = 1.0


def _frame(hex_: str) -> str:
    h = hex_.strip().lower()
    if len(h) != 64 or not HEX.fullmatch(h):
        raise InvalidValue("a vPDQ frame is a 64-hex-character PDQ hash")
    return h


def _canonical(frames: Sequence[str]) -> str:
    distinct = sorted(set(frames))
    if not distinct:
        raise InvalidValue(f"a vPDQ hash needs at least one frame of quality >= {FRAME_QUALITY}")
    value = ",".join(distinct)
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidValue(
            f"a vPDQ value holds at most {MAX_VALUE_LENGTH // 65} distinct frames; hash at fewer frames per second"
        )
    return value


def frames_of(value: str) -> list[str]:
    """The frame hashes of a canonical value."""
    return value.split(",")


def match_percent(query: Sequence[str], compared: Sequence[str]) -> tuple[float, float]:
    """(query %, compared %) of two canonical frame lists, by brute force: the reference."""

    def matched(a: Sequence[str], b: Sequence[str]) -> int:
        return sum(any((int(x, 16) ^ int(y, 16)).bit_count() <= FRAME_DISTANCE for y in b) for x in a)

    return matched(query, compared) * 100 / len(query), matched(compared, query) * 100 / len(compared)


class Vpdq(SignalType):
    """vPDQ video hash: distinct good frames, matched frame by frame."""

    name = "vpdq"
    matcher = Matcher.SCAN
    content = Content.MEDIA
    media_suffixes = VIDEO_SUFFIXES
    pytx_name = "vpdq"
    examples = (
        (
            '["F8F8F0CEE0F4A84F06370A22038F63F0B36E2ED596621E1D33E6B39C4E9C9B22,100,0.000",'
            ' "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22,98,1.000",'
            ' "0000000000000000000000000000000000000000000000000000000000000000,0,2.000"]',
            "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
        ),
    )
    bad_examples = ("", "[]", "f8f8", '["f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22,10,0.0"]')

    def normalize(self, raw: str) -> str:
        text = raw.strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except ValueError as exc:
                raise InvalidValue("a vPDQ JSON value is a list of \"pdq_hex,quality,timestamp\" strings") from exc
            if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
                raise InvalidValue("a vPDQ JSON value is a list of \"pdq_hex,quality,timestamp\" strings")
            frames = []
            for item in items:
                parts = item.split(",")
                if len(parts) != 3:
                    raise InvalidValue("a vPDQ frame is \"pdq_hex,quality,timestamp\"")
                try:
                    quality = int(parts[1])
                except ValueError as exc:
                    raise InvalidValue("a vPDQ frame's quality is an integer 0..100") from exc
                if not 0 <= quality <= 100:
                    raise InvalidValue("a vPDQ frame's quality is an integer 0..100")
                if quality >= FRAME_QUALITY:
                    frames.append(_frame(parts[0]))
            return _canonical(frames)
        return _canonical([_frame(f) for f in text.split(",")] if text else [])

    def frames(self, value: str) -> list[str]:
        """The frame hashes of a canonical value (what a frame index stores)."""
        return frames_of(value)

    def distance(self, signal_value: str, content_value: str) -> int | None:
        """None unless the content video matches the signal's by pytx's rule (>= 80% of
        the content's frames match, >= 0% of the signal's); then the closest frame pair."""
        query, compared = frames_of(content_value), frames_of(signal_value)
        q_pct, c_pct = match_percent(query, compared)
        if q_pct < QUERY_MATCH_PERCENT or c_pct < COMPARED_MATCH_PERCENT:
            return None
        return min((int(x, 16) ^ int(y, 16)).bit_count() for x in query for y in compared)

    def hash_media(self, path: Path) -> ContentHash | None:
        """vPDQ of a video FFmpeg can decode (None otherwise, or without good frames)."""
        try:
            import vpdq
        except ImportError:
            return None  # the optional `vpdq` package is not installed
        try:
            features = vpdq.computeHash(str(path), seconds_per_hash=SECONDS_PER_HASH)
        except (OSError, ValueError, RuntimeError):
            return None
        good = [f.hex for f in features if f.quality >= FRAME_QUALITY]
        try:
            return ContentHash(self.name, _canonical(good))
        except InvalidValue:
            return None

    def pytx_value(self, value: str) -> str:
        """python-threatexchange's JSON form (quality 100: every kept frame passed 50)."""
        return json.dumps([f"{h},100,{i:.3f}" for i, h in enumerate(frames_of(value))])
