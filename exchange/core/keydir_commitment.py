"""The key directory committed in every checkpoint, as a C2SP checkpoint extension line.

``trustwire-keydir <count> <base64 digest>``: ``count`` is the number of KeyEvent records
with index below the checkpoint's size and ``digest`` a hash chain over their leaf hashes
in index order (``h0`` = 32 zero bytes, ``h(k+1) = SHA-256(h(k) || leaf_hash(record k))``).
An exchange that withholds a key event (a compromise revocation, say) from one member
must then either sign a line that member's own view contradicts, or one that every
other member and auditor can show is wrong.
"""

from __future__ import annotations

import base64
import bisect
import binascii
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from exchange.core import note as notes
from exchange.core.errors import SecurityError
from exchange.core.records import Record, leaf_hash

__all__ = ["PREFIX", "KeyDirCommitment", "KeyDirChain", "commit", "committed_in"]

PREFIX = "trustwire-keydir"


@dataclass(frozen=True, slots=True)
class KeyDirCommitment:
    count: int
    digest: bytes

    def line(self) -> str:
        return f"{PREFIX} {self.count} {base64.b64encode(self.digest).decode()}"


def commit(key_event_records: Iterable[bytes]) -> KeyDirCommitment:
    """The commitment over these KeyEvent records (in index order)."""
    h, n = bytes(32), 0
    for record in key_event_records:
        h = hashlib.sha256(h + leaf_hash(record)).digest()
        n += 1
    return KeyDirCommitment(n, h)


def committed_in(checkpoint: notes.Checkpoint) -> KeyDirCommitment:
    """The commitment a checkpoint carries; SecurityError if it has none or a bad one."""
    lines = [e for e in checkpoint.extensions if e.split(" ", 1)[0] == PREFIX]
    if len(lines) != 1:
        raise SecurityError(f"checkpoint {checkpoint.size} does not commit to the key directory exactly once")
    parts = lines[0].split(" ")
    try:
        if len(parts) != 3 or not parts[1].isdigit():
            raise ValueError(lines[0])
        digest = base64.b64decode(parts[2], validate=True)
    except (ValueError, binascii.Error) as exc:
        raise SecurityError(f"checkpoint {checkpoint.size}: malformed key directory line") from exc
    if len(digest) != 32:
        raise SecurityError(f"checkpoint {checkpoint.size}: malformed key directory line")
    return KeyDirCommitment(int(parts[1]), digest)


class KeyDirChain:
    """The commitment at any tree size, from all of a ledger's KeyEvent records (an auditor's view)."""

    def __init__(self, key_event_records: Iterable[bytes]) -> None:
        self._indices: list[int] = []
        self._digests: list[bytes] = []
        h = bytes(32)
        for record in key_event_records:
            h = hashlib.sha256(h + leaf_hash(record)).digest()
            self._indices.append(Record.decode(record).index)
            self._digests.append(h)

    def at(self, size: int) -> KeyDirCommitment:
        n = bisect.bisect_left(self._indices, size)
        return KeyDirCommitment(n, self._digests[n - 1] if n else bytes(32))
