"""A C2SP tlog-witness: cosigns checkpoints of the logs it trusts over HTTP.

A package of its own: :mod:`.core` (:class:`Witness`, ``add-checkpoint`` of
c2sp.org/tlog-witness without HTTP), :mod:`.state` (:class:`WitnessState`),
:mod:`.server` (:func:`serve_witness`, ``POST <prefix>/add-checkpoint``),
:mod:`.config` (:class:`WitnessConfig`) and :mod:`.main` (``python -m
clients.witness --config witness.toml``).

For each trusted origin the witness remembers the latest checkpoint it
cosigned in a SQLite file (:class:`WitnessState`).  Checking the request's old
size against that record, checking the consistency proof against the stored
root, and storing the new checkpoint happen in ONE ``BEGIN IMMEDIATE``
transaction, so two racing requests cannot roll the record back (the race in
the spec's last paragraph).

Checks, in order (first failure wins)::

    body too large                              413
    body malformed                              400
    origin not configured                       404
    no signature from a trusted log key         403
    old size > checkpoint size                  400
    old size != latest cosigned size            409  text/x.tlog.size body
    old size == size but a different root       409  (recorded as a conflict)
    consistency proof does not verify           422  (recorded as a conflict)
    otherwise: persist, then                    200  cosignature/v1 line

Refused checkpoints that carry a valid log signature but contradict the
stored one are kept in the ``conflicts`` table with both notes: they may be
proof that the log showed different views to different parties.
"""

from clients.witness.config import WitnessConfig, read_signing_key
from clients.witness.core import Witness, WitnessResponse
from clients.witness.main import main
from clients.witness.server import RunningWitness, serve_witness
from clients.witness.state import Conflict, CosignedCheckpoint, WitnessState

__all__ = [
    "Conflict",
    "CosignedCheckpoint",
    "RunningWitness",
    "Witness",
    "WitnessConfig",
    "WitnessResponse",
    "WitnessState",
    "main",
    "read_signing_key",
    "serve_witness",
]
