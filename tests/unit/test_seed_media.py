"""Checks for the synthetic demo media in ``seeds/media`` (see seeds/make_media.py).

Every hash is recomputed from the files on disk (hashlib / pdqhash) rather
than trusted from ``manifest.json``; the manifest is then checked against the
recomputed values, and the matching invariants the demo relies on are checked
against the recomputed PDQ hashes.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
import pytest
from PIL import Image

MEDIA_DIR = Path(__file__).resolve().parents[2] / "seeds" / "media"
MANIFEST = MEDIA_DIR / "manifest.json"

PDQ_MATCH_THRESHOLD = 31
BENIGN_MIN_DISTANCE = 90  # what make_media.py promises for benign images
MIN_ORIGINAL_QUALITY = 80
MAX_TOTAL_BYTES = 3 * 1024 * 1024
N_ORIGINALS, N_BENIGN = 6, 4
ALTERATIONS = {"resized": ".resized.png", "reencoded": ".reencoded.jpg", "cropped": ".cropped.png"}
HEX64 = re.compile(r"^[0-9a-f]{64}$")


@cache
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(MANIFEST.read_text())
    return data


def entries() -> list[dict[str, Any]]:
    files: list[dict[str, Any]] = manifest()["files"]
    return files


def by_role(role: str) -> list[dict[str, Any]]:
    return [e for e in entries() if e["role"] == role]


def pdq_bits(name: str) -> np.ndarray:
    with Image.open(MEDIA_DIR / name) as img:
        arr = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    vec, _quality = pdqhash.compute(arr)
    return np.asarray(vec, dtype=np.uint8)


@cache
def recomputed(name: str) -> tuple[str, int]:
    """(pdq hex, quality) recomputed from the file; hex is MSB-first over the vector."""
    with Image.open(MEDIA_DIR / name) as img:
        arr = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    vec, quality = pdqhash.compute(arr)
    bits = "".join("1" if int(b) else "0" for b in vec)
    return "%064x" % int(bits, 2), int(quality)


def pdq(name: str) -> str:
    return recomputed(name)[0]


def dist(a: str, b: str) -> int:
    return bin(int(pdq(a), 16) ^ int(pdq(b), 16)).count("1")


# ---------------------------------------------------------------- manifest


def test_manifest_lists_exactly_the_media_files() -> None:
    on_disk = sorted(p.name for p in MEDIA_DIR.iterdir() if p.is_file() and p.name != "manifest.json")
    listed = [e["name"] for e in entries()]
    assert len(listed) == len(set(listed)), "duplicate names in manifest"
    assert sorted(listed) == on_disk


def test_manifest_has_expected_set() -> None:
    originals = sorted(e["name"] for e in by_role("original"))
    assert originals == [f"orig-{i:02d}.png" for i in range(1, N_ORIGINALS + 1)]
    benign = sorted(e["name"] for e in by_role("benign"))
    assert benign == [f"benign-{i:02d}.png" for i in range(1, N_BENIGN + 1)]
    expected_altered = sorted(
        o[: -len(".png")] + suffix for o in originals for suffix in ALTERATIONS.values()
    )
    assert sorted(e["name"] for e in by_role("altered")) == expected_altered
    assert {e["role"] for e in entries()} == {"original", "altered", "benign"}


@pytest.mark.parametrize("name", [e["name"] for e in entries()])
def test_manifest_entry_matches_file(name: str) -> None:
    entry = next(e for e in entries() if e["name"] == name)
    data = (MEDIA_DIR / name).read_bytes()
    assert entry["md5"] == hashlib.md5(data).hexdigest()
    assert entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert HEX64.match(entry["pdq"]), entry["pdq"]
    assert HEX64.match(entry["sha256"])
    hex_, quality = recomputed(name)
    assert entry["pdq"] == hex_
    assert entry["pdq_quality"] == quality
    if entry["role"] == "altered":
        orig = entry["original"]
        assert orig in {e["name"] for e in by_role("original")}
        assert name.startswith(orig[: -len(".png")] + ".")
        assert entry["distance_to_original"] == dist(name, orig)
    else:
        assert entry.get("original") is None


def test_pdq_hex_is_reference_format() -> None:
    """The hex must equal Meta's Hash256::format(): words w[15]..w[0] as %04hx,
    where pdqhash's vector is [bit(k) for k in 0..255] reversed and bit k lives in
    w[k >> 4] at position k & 15."""
    for e in entries()[:3] + by_role("original")[:1]:
        vec = pdq_bits(e["name"])
        bit = vec[::-1]  # bit[k] == reference bit k
        words = [sum(int(bit[16 * w + j]) << j for j in range(16)) for w in range(16)]
        reference = "".join("%04x" % words[w] for w in range(15, -1, -1))
        assert e["pdq"] == reference


# ---------------------------------------------------------------- invariants


def test_originals_have_good_quality() -> None:
    for e in by_role("original"):
        assert recomputed(e["name"])[1] >= MIN_ORIGINAL_QUALITY, e["name"]


@pytest.mark.parametrize("name", [e["name"] for e in by_role("altered")])
def test_altered_copy_matches_its_original(name: str) -> None:
    orig = next(e["original"] for e in entries() if e["name"] == name)
    assert dist(name, orig) <= PDQ_MATCH_THRESHOLD


def test_altered_copies_do_not_match_other_originals() -> None:
    for alt, orig in itertools.product(by_role("altered"), by_role("original")):
        if alt["original"] != orig["name"]:
            assert dist(alt["name"], orig["name"]) > PDQ_MATCH_THRESHOLD, (alt["name"], orig["name"])


@pytest.mark.parametrize("name", [e["name"] for e in by_role("benign")])
def test_benign_never_matches(name: str) -> None:
    for other in entries():
        if other["name"] == name:
            continue
        d = dist(name, other["name"])
        assert d > PDQ_MATCH_THRESHOLD, (other["name"], d)
        if other["role"] != "benign":
            assert d > BENIGN_MIN_DISTANCE, (other["name"], d)


def test_originals_pairwise_distinct() -> None:
    names = [e["name"] for e in by_role("original")]
    for a, b in itertools.combinations(names, 2):
        assert dist(a, b) > PDQ_MATCH_THRESHOLD, (a, b, dist(a, b))


def test_media_is_small() -> None:
    total = sum(p.stat().st_size for p in MEDIA_DIR.iterdir() if p.is_file())
    assert total < MAX_TOTAL_BYTES
