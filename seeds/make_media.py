#!/usr/bin/env python3
"""Generate the synthetic demo media set for the Trustwire demo task force.

Everything written here is *purely generated abstract imagery* (gradients,
geometric shapes, interference patterns).  There is no real-world content of
any kind, let alone abuse material: the files only exist so that the demo
exchange has something to hash, share and match.

Output (into ``seeds/media/`` next to this script):

* ``orig-01.png`` .. ``orig-06.png``   six distinct "original" images
* for each original three altered copies that must still PDQ-match it:
    - ``orig-NN.resized.png``    downscaled to 60 % (Lanczos), PNG
    - ``orig-NN.reencoded.jpg``  re-encoded as baseline JPEG, quality 60
    - ``orig-NN.cropped.png``    2 % trimmed off every edge (4 % of the width
                                 and of the height, ~8 % of the area)
* ``benign-01.png`` .. ``benign-04.png``  unrelated images that must never match
* ``manifest.json``  name, role, original, md5, sha256, pdq, pdq_quality and
  (for altered copies) the PDQ distance to the original.

Why the originals carry a faint mottled texture, and why the crop is 2 %/edge
---------------------------------------------------------------------------
PDQ thresholds 256 low-frequency DCT coefficients at their median.  Flat
shapes on gradients have a steep spectrum, so most of those coefficients sit
right next to the median and flip under any alteration (plain shape images
gave resize distances of 14-22 and 1 %/edge crop distances of 20-28).  After
drawing, ``stabilise_pdq`` therefore nudges every coefficient at least
``PDQ_STABILISE_MARGIN`` grey levels away from the median by adding a weak sum
of the corresponding cosine patterns (visible as a soft mottling).  This does
not change which side of the median any coefficient is on, it only opens a
gap.  Even so PDQ is inherently crop-sensitive: cropping 4 % off *every* edge
(8 % per dimension) rescales the DCT frequencies so much that distances were
50-78 with or without stabilisation, so the crop was tuned down to 2 % per
edge (4 % of each dimension), which stays far inside the threshold.

The script is fully deterministic: fixed seeds, no timestamps or other
metadata in the files, fixed encoder options, sorted JSON.  Running it twice
produces byte-identical output (for a given Pillow/zlib/libjpeg build).  It
also asserts the matching invariants and exits non-zero if any are violated.

PDQ hex convention
------------------
``pdqhash.compute`` returns a length-256 0/1 vector.  Its bindings build it as
``[bit(k) for k in range(256)][::-1]`` where ``bit(k)`` is bit ``k & 15`` of
16-bit word ``w[k >> 4]`` of the reference ``Hash256`` struct, so
``vector[0]`` is bit 255 and ``vector[255]`` is bit 0.  Meta's reference
``Hash256::format()`` prints the words ``w[15] .. w[0]`` as ``%04hx``, i.e. the
256-bit integer most-significant bit (bit 255) first.  Hence the reference hex
is obtained by reading the vector *in order* as a big-endian (MSB-first)
binary number and printing it as 64 zero-padded lowercase hex digits -- the
same convention as ThreatExchange's python-threatexchange
(``"%0*x" % (64, int("".join(map(str, vec)), 2))``).  Hamming distance is
therefore simply the popcount of the XOR of the two 256-bit integers.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
OUT_DIR = HERE / "media"

WIDTH, HEIGHT = 480, 360
N_ORIGINALS = 6
N_BENIGN = 4
BASE_SEED = 0x7275_7374  # "rust" -- any fixed constant works

PDQ_MATCH_THRESHOLD = 31  # ThreatExchange's "confident match" threshold
BENIGN_MIN_DISTANCE = 90  # benign images must be at least this far from all
MIN_QUALITY = 80

RESIZE_FACTOR = 0.60
JPEG_QUALITY = 60
CROP_FRACTION = 0.02  # trimmed from *each* edge (4 % of each dimension)
PDQ_STABILISE_MARGIN = 2.0  # grey levels; see module docstring

# Fixed encoder options so output does not depend on Pillow defaults.
PNG_OPTIONS = {"format": "PNG", "optimize": False, "compress_level": 9}
JPEG_OPTIONS = {
    "format": "JPEG",
    "quality": JPEG_QUALITY,
    "subsampling": 2,  # 4:2:0
    "optimize": False,
    "progressive": False,
}


# --------------------------------------------------------------------------
# PDQ helpers
# --------------------------------------------------------------------------


def pdq_vector_to_hex(vec: Any) -> str:
    """Reference-compatible hex: vector read in order, MSB first (see above)."""
    bits = "".join("1" if int(b) else "0" for b in vec)
    assert len(bits) == 256
    return "%064x" % int(bits, 2)


def pdq_of_image(img: Image.Image) -> tuple[str, int]:
    arr = np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))
    vec, quality = pdqhash.compute(arr)
    return pdq_vector_to_hex(vec), int(quality)


def pdq_of_file(path: Path) -> tuple[str, int]:
    with Image.open(path) as img:
        img.load()
        return pdq_of_image(img)


def pdq_distance(hex_a: str, hex_b: str) -> int:
    return bin(int(hex_a, 16) ^ int(hex_b, 16)).count("1")


# --------------------------------------------------------------------------
# Image generators (pure numpy + ImageDraw; no fonts, no text)
# --------------------------------------------------------------------------


def _rand_color(rng: np.random.Generator, lo: int = 0, hi: int = 256) -> tuple[int, int, int]:
    r, g, b = (int(c) for c in rng.integers(lo, hi, size=3))
    return (r, g, b)


def _smooth_field(rng: np.random.Generator, w: int, h: int, n_waves: int) -> np.ndarray:
    """Sum of a few low-frequency plane waves, normalised to [0, 1]."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    x /= w
    y /= h
    field = np.zeros((h, w))
    for _ in range(n_waves):
        fx, fy = rng.uniform(-2.5, 2.5, size=2)
        phase = rng.uniform(0, 2 * math.pi)
        field += rng.uniform(0.5, 1.0) * np.sin(2 * math.pi * (fx * x + fy * y) + phase)
    field -= field.min()
    field /= max(field.max(), 1e-9)
    return field


def _gradient_background(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    field = _smooth_field(rng, w, h, n_waves=3)
    c0 = np.array(_rand_color(rng), dtype=np.float64)
    c1 = np.array(_rand_color(rng), dtype=np.float64)
    rgb = c0[None, None, :] * (1 - field[..., None]) + c1[None, None, :] * field[..., None]
    return Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB")


def _cos_basis(n: int, k: int = 16) -> np.ndarray:
    """DCT-II basis rows for frequencies 1..k sampled on n pixel centres --
    the same frequencies PDQ keeps from its 64x64 downsample."""
    u = np.arange(1, k + 1, dtype=np.float64)
    return np.cos(np.pi * u[:, None] * ((np.arange(n) + 0.5) / n)[None, :])


def stabilise_pdq(img: Image.Image, margin: float = PDQ_STABILISE_MARGIN) -> Image.Image:
    """Push every PDQ DCT coefficient at least ``margin`` away from the median.

    einsum (no BLAS) keeps the arithmetic order fixed, so output is stable."""
    a = np.asarray(img.convert("RGB"), dtype=np.float64)
    h, w = a.shape[:2]
    cy, cx = _cos_basis(h), _cos_basis(w)
    luma = a[..., 0] * 0.299 + a[..., 1] * 0.587 + a[..., 2] * 0.114
    # coefficients expressed as amplitudes (grey levels) of each cosine term
    coef = np.einsum("vy,yx,ux->vu", cy, luma, cx, optimize=False) / (h * w / 4.0)
    flat = np.sort(coef.ravel())
    med = (flat[127] + flat[128]) / 2.0
    target = np.where(coef > med, np.maximum(coef, med + margin), np.minimum(coef, med - margin))
    delta = np.einsum("vy,vu,ux->yx", cy, target - coef, cx, optimize=False)
    out = np.clip(np.rint(a + delta[..., None]), 0, 255).astype(np.uint8)
    return Image.fromarray(out, "RGB")


def make_original(index: int) -> Image.Image:
    """Large bold shapes over a smooth gradient: strong low-frequency
    structure (robust PDQ) with plenty of edges (high PDQ quality)."""
    rng = np.random.default_rng(BASE_SEED + 1000 + index)
    w, h = WIDTH, HEIGHT
    img = _gradient_background(rng, w, h)
    draw = ImageDraw.Draw(img)

    # A handful of large shapes dominate the low-frequency content.
    for _ in range(int(rng.integers(5, 8))):
        kind = int(rng.integers(0, 3))
        cx, cy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.1, 0.9) * h
        rx, ry = rng.uniform(0.12, 0.30) * w, rng.uniform(0.12, 0.30) * h
        color = _rand_color(rng)
        if kind == 0:
            draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=color)
        elif kind == 1:
            draw.rectangle([cx - rx, cy - ry, cx + rx, cy + ry], fill=color)
        else:
            n = int(rng.integers(3, 7))
            angles = np.sort(rng.uniform(0, 2 * math.pi, size=n))
            pts = [(cx + rx * math.cos(a), cy + ry * math.sin(a)) for a in angles]
            draw.polygon(pts, fill=color)

    # Smaller accent shapes and strokes for edge detail.
    for _ in range(int(rng.integers(10, 16))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.02, 0.07) * w
        color = _rand_color(rng)
        if rng.random() < 0.5:
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=color)
        else:
            draw.rectangle([cx - r, cy - r * 0.6, cx + r, cy + r * 0.6], outline=color, width=4)
    for _ in range(int(rng.integers(3, 6))):
        x0, y0, x1, y1 = rng.uniform(0, 1, size=4) * np.array([w, h, w, h])
        draw.line([(x0, y0), (x1, y1)], fill=_rand_color(rng), width=int(rng.integers(3, 9)))
    return stabilise_pdq(img)


def make_benign(index: int) -> Image.Image:
    """A different family of patterns (stripes / rings / tiles / blobs)."""
    rng = np.random.default_rng(BASE_SEED + 2000 + index)
    w, h = WIDTH, HEIGHT
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    style = index % 4
    if style == 0:  # diagonal interference stripes
        f = rng.uniform(3, 6)
        t = np.sin(2 * math.pi * f * (x / w + 0.6 * y / h)) * np.cos(2 * math.pi * rng.uniform(1, 3) * y / h)
    elif style == 1:  # concentric rings around an off-centre point
        cx, cy = rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h
        rad = np.hypot(x - cx, y - cy)
        t = np.sin(2 * math.pi * rad / rng.uniform(40, 70))
    elif style == 2:  # tiled checker with smooth modulation
        s = rng.uniform(50, 80)
        t = np.sign(np.sin(math.pi * x / s) * np.sin(math.pi * y / s)) * 0.7
        t += 0.3 * np.sin(2 * math.pi * x / w)
    else:  # smooth blobs, posterised into contour bands
        t = np.floor(_smooth_field(rng, w, h, n_waves=5) * 5.999) / 5.0
    t = (t - t.min()) / max(t.max() - t.min(), 1e-9)
    # dark -> bright colour pair so the pattern has real luma contrast
    c0 = np.array(_rand_color(rng, 0, 110), dtype=np.float64)
    c1 = np.array(_rand_color(rng, 150, 256), dtype=np.float64)
    rgb = c0 * (1 - t[..., None]) + c1 * t[..., None]
    img = Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8), "RGB")
    # quantise a little so the PNG stays small
    return img.quantize(colors=64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).convert("RGB")


# --------------------------------------------------------------------------
# Alterations
# --------------------------------------------------------------------------


def alter_resized(img: Image.Image) -> Image.Image:
    size = (round(img.width * RESIZE_FACTOR), round(img.height * RESIZE_FACTOR))
    return img.resize(size, Image.Resampling.LANCZOS)


def alter_cropped(img: Image.Image) -> Image.Image:
    dx, dy = round(img.width * CROP_FRACTION), round(img.height * CROP_FRACTION)
    return img.crop((dx, dy, img.width - dx, img.height - dy))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def _save(img: Image.Image, path: Path, options: dict[str, Any]) -> None:
    # Save via an in-memory buffer, then write bytes: no partial files, and
    # strip any info dict Pillow might carry over.
    img = img.convert("RGB")
    img.info.clear()
    buf = io.BytesIO()
    img.save(buf, **options)
    path.write_bytes(buf.getvalue())


def _digests(path: Path) -> tuple[str, str]:
    data = path.read_bytes()
    return hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()


def main() -> int:
    t0 = time.perf_counter()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    entries: list[dict[str, Any]] = []

    def record(path: Path, role: str, original: str | None = None) -> dict[str, Any]:
        md5, sha256 = _digests(path)
        pdq, quality = pdq_of_file(path)  # hash the bytes as written
        with Image.open(path) as im:
            width, height = im.size
        entry = {
            "name": path.name,
            "role": role,
            "original": original,
            "width": width,
            "height": height,
            "bytes": path.stat().st_size,
            "md5": md5,
            "sha256": sha256,
            "pdq": pdq,
            "pdq_quality": quality,
        }
        entries.append(entry)
        return entry

    originals: dict[str, dict[str, Any]] = {}
    altered: list[dict[str, Any]] = []
    for i in range(1, N_ORIGINALS + 1):
        stem = f"orig-{i:02d}"
        img = make_original(i)
        p = OUT_DIR / f"{stem}.png"
        _save(img, p, PNG_OPTIONS)
        originals[p.name] = record(p, "original")

        variants = [
            (f"{stem}.resized.png", alter_resized(img), PNG_OPTIONS, "resized"),
            (f"{stem}.reencoded.jpg", img, JPEG_OPTIONS, "reencoded"),
            (f"{stem}.cropped.png", alter_cropped(img), PNG_OPTIONS, "cropped"),
        ]
        for name, vimg, opts, alteration in variants:
            vp = OUT_DIR / name
            _save(vimg, vp, opts)
            e = record(vp, "altered", original=p.name)
            e["alteration"] = alteration
            e["distance_to_original"] = pdq_distance(e["pdq"], originals[p.name]["pdq"])
            altered.append(e)

    benign: list[dict[str, Any]] = []
    for i in range(1, N_BENIGN + 1):
        p = OUT_DIR / f"benign-{i:02d}.png"
        _save(make_benign(i), p, PNG_OPTIONS)
        benign.append(record(p, "benign"))

    # ---- invariants ------------------------------------------------------
    errors: list[str] = []
    for e in list(originals.values()) + benign:
        if e["pdq_quality"] < MIN_QUALITY:
            errors.append(f"{e['name']}: PDQ quality {e['pdq_quality']} < {MIN_QUALITY}")
    for e in altered:
        if e["distance_to_original"] > PDQ_MATCH_THRESHOLD:
            errors.append(f"{e['name']}: distance {e['distance_to_original']} > {PDQ_MATCH_THRESHOLD}")
    names = list(originals)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            d = pdq_distance(originals[names[a]]["pdq"], originals[names[b]]["pdq"])
            if d <= PDQ_MATCH_THRESHOLD:
                errors.append(f"{names[a]} vs {names[b]}: originals too close ({d})")
    non_benign = list(originals.values()) + altered
    min_benign = 256
    for bn in benign:
        for o in non_benign + [x for x in benign if x is not bn]:
            d = pdq_distance(bn["pdq"], o["pdq"])
            if o["role"] != "benign":
                min_benign = min(min_benign, d)
                if d <= BENIGN_MIN_DISTANCE:
                    errors.append(f"{bn['name']} vs {o['name']}: distance {d} <= {BENIGN_MIN_DISTANCE}")
            elif d <= PDQ_MATCH_THRESHOLD:
                errors.append(f"{bn['name']} vs {o['name']}: benign images match each other ({d})")

    entries.sort(key=lambda e: e["name"])
    manifest = {
        "description": (
            "Synthetic, generated abstract demo media for the Trustwire demo task force. "
            "Contains no real-world content. Regenerate with seeds/make_media.py."
        ),
        "pdq_hex_convention": (
            "pdqhash vector read in order as a 256-bit big-endian binary number (vector[0] = MSB = "
            "reference bit 255), printed as 64 lowercase hex digits; identical to Meta's PDQ "
            "reference Hash256 hex and python-threatexchange."
        ),
        "pdq_match_threshold": PDQ_MATCH_THRESHOLD,
        "files": entries,
    }
    (OUT_DIR / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")

    dists = [e["distance_to_original"] for e in altered]
    total = sum(p.stat().st_size for p in OUT_DIR.iterdir() if p.is_file())
    print(f"wrote {len(entries)} images + manifest.json to {OUT_DIR} ({total / 1024:.0f} KiB)")
    for e in altered:
        print(f"  {e['name']:<24} d={e['distance_to_original']:>3}")
    print(f"altered->original distance: min {min(dists)} max {max(dists)}")
    print(f"min benign distance to originals/altered: {min_benign}")
    print(f"original qualities: {[e['pdq_quality'] for e in originals.values()]}")
    print(f"benign qualities: {[e['pdq_quality'] for e in benign]}")
    print(f"elapsed {time.perf_counter() - t0:.2f}s")
    if errors:
        for msg in errors:
            print("ERROR:", msg, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
