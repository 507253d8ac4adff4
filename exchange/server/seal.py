"""Seals: what a store records about its files when it stops, so the next start can
tell "unchanged since I closed it" from "changed while I was away".

A seal is a small JSON file next to the files it covers. It is written ``open`` as
soon as the store starts (so a crash leaves an ``open`` seal behind) and ``closed``
at a clean stop, with each covered file's identity: inode, size, and modification
and status-change times in nanoseconds. Any write to a file, or a copy or restore of
it, changes at least one of those (the status-change time cannot be set by a user),
so a ``closed`` seal that still matches proves nobody touched the files since.

A seal only ever lets a start skip work; it never replaces a check a changed file
needs. Damage that bypasses the file system (bit rot under the disk) is for the
explicit full verification to find.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = ["Seal", "SealState", "file_identity"]

FORMAT = "trustwire-seal-v1"


class SealState(StrEnum):
    CLOSED = "closed"  # a clean stop; the files' identities follow
    OPEN = "open"  # the store was running: a crash, if it is still open at the next start
    MISSING = "missing"  # no seal (first start, an older release, or a restore)


def file_identity(path: Path) -> list[int] | None:
    """``[inode, size, mtime_ns, ctime_ns]`` of a file, or None if it does not exist."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


@dataclass(frozen=True, slots=True, kw_only=True)
class Seal:
    """The seal file at ``path`` as found at start-up."""

    path: Path
    state: SealState
    files: dict[str, list[int] | None]
    extra: dict[str, Any]

    @classmethod
    def load(cls, path: Path) -> Seal:
        """Read a seal; an unreadable or foreign one counts as missing (never trusted)."""
        try:
            data = json.loads(Path(path).read_text())
            state = SealState(data["state"])
            if data.get("format") != FORMAT or state is SealState.MISSING:
                raise ValueError("not a seal")
            files = {str(k): (None if v is None else [int(x) for x in v]) for k, v in dict(data["files"]).items()}
            extra = dict(data.get("extra", {}))
        except (OSError, ValueError, KeyError, TypeError):
            return cls(path=Path(path), state=SealState.MISSING, files={}, extra={})
        return cls(path=Path(path), state=state, files=files, extra=extra)

    def unchanged(self, files: dict[str, Path]) -> bool:
        """Closed cleanly, and every covered file is exactly as it was then."""
        if self.state is not SealState.CLOSED or set(self.files) != set(files):
            return False
        return all(self.files[name] == file_identity(p) for name, p in files.items())

    @staticmethod
    def write(path: Path, state: SealState, files: dict[str, Path], extra: dict[str, Any] | None = None) -> None:
        """Replace the seal atomically and durably (write, fsync, rename, fsync dir)."""
        identities = {name: file_identity(p) for name, p in files.items()} if state is SealState.CLOSED else {}
        body = json.dumps({"format": FORMAT, "state": state.value, "files": identities, "extra": extra or {}})
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
