"""PDQ lookups from a read-only install: numba's compiled code is cached elsewhere, never
fails the import, and never comes from a directory another user could have prepared.

Each case copies the index's two modules into a fresh package directory and runs lookups
in a new interpreter, twice (the second must load the compiled code from the cache the
first wrote), with that directory (and, in some cases, the home directory) mounted
read-only in a private mount namespace (``unshare``, util-linux): a read-only file system
stops root as well as any user, as a read-only container image does."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
LOOKUP = """
import json, numba, numpy as np
from clients import pdq_index, pdq_kernel
codes = np.random.default_rng(1).integers(0, 2**64, size=(3000, 4), dtype=np.uint64)
index = pdq_index.PdqIndex()
index.add_many(np.arange(3000), codes)
index.fold(force=True)
assert index.search(codes[7]) == [(7, 0)] and index.search(codes[8], threshold=0) == [(8, 0)]
k = pdq_kernel.scan_segment
print(json.dumps({"module": pdq_kernel.__file__, "hits": sum(k.stats.cache_hits.values()),
                  "cache_dir": numba.config.CACHE_DIR}))
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return tmp_path


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package(root: Path) -> Path:
    pkg = root / "pkg" / "clients"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for name in ("pdq_index.py", "pdq_kernel.py"):
        shutil.copy(REPO / "clients" / name, pkg / name)
    return pkg


def _lookup(pkg: Path, home: Path, tmp: Path, read_only: list[Path]) -> dict[str, object]:
    """Lookups in a new interpreter that sees ``read_only`` as read-only file systems."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # -S below: no .pth files, so not the editable install's import hook either
        "PYTHONPATH": os.pathsep.join([str(pkg.parent), str(Path(np.__file__).parents[1])]),
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "TMPDIR": str(tmp),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    mounts = " && ".join(f"mount --bind {shlex.quote(str(d))} {shlex.quote(str(d))} && "
                         f"mount -o remount,bind,ro {shlex.quote(str(d))}" for d in read_only)
    script = f"{mounts} && touch {shlex.quote(str(read_only[0] / 'probe'))} 2>/dev/null && exit 97; " \
             f"exec {shlex.quote(sys.executable)} -S -c {shlex.quote(LOOKUP)}"
    done = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", script], env=env, cwd=tmp,
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode != 97, "the read-only mount is writable"
    assert done.returncode == 0, done.stderr[-3000:]
    out: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["module"] == str(pkg / "pdq_kernel.py")  # the read-only copy, not the repository's
    return out


def _files(d: Path) -> list[Path]:
    return [p for p in d.rglob("*") if p.is_file()]


def test_a_read_only_install_caches_in_the_users_cache_directory(root: Path) -> None:
    pkg = _package(root)
    home, tmp = _dir(root / "home"), _dir(root / "tmp")
    first = _lookup(pkg, home, tmp, [pkg.parent])
    second = _lookup(pkg, home, tmp, [pkg.parent])
    assert first["hits"] == 0 and int(second["hits"]) > 0  # type: ignore[call-overload]
    assert any(p.suffix == ".nbi" for p in _files(home / ".cache" / "numba"))
    assert sorted(p.name for p in _files(pkg)) == ["__init__.py", "pdq_index.py", "pdq_kernel.py"]
    assert not _files(tmp)


def test_with_no_writable_home_the_cache_goes_to_a_private_temp_directory(root: Path) -> None:
    pkg = _package(root)
    home, tmp = _dir(root / "home"), _dir(root / "tmp")
    first = _lookup(pkg, home, tmp, [pkg.parent, home])
    second = _lookup(pkg, home, tmp, [pkg.parent, home])
    private = tmp / "trustwire-numba-0"  # the namespace's user
    assert first["cache_dir"] == second["cache_dir"] == str(private)
    assert int(second["hits"]) > 0  # type: ignore[call-overload]
    assert stat.S_IMODE(private.stat().st_mode) == 0o700 and any(p.suffix == ".nbi" for p in _files(private))


def test_a_cache_directory_planted_in_the_shared_temp_dir_is_not_used(root: Path) -> None:
    """Another user creates the fallback directory first, writable by all, to have the
    lookup unpickle code it put there: it is refused, lookups still work, uncached."""
    pkg = _package(root)
    home, tmp = _dir(root / "home"), _dir(root / "tmp")
    planted = tmp / "trustwire-numba-0"  # the namespace's user
    planted.mkdir()
    planted.chmod(0o777)
    for _ in range(2):
        out = _lookup(pkg, home, tmp, [pkg.parent, home])
        assert out["cache_dir"] in ("", None) and out["hits"] == 0
    assert not _files(planted)
