"""``TrustwireSignalExchangeAPI``: python-threatexchange / HMA fetch from a Trustwire exchange.

Every entry is verified before it becomes an update, exactly as the SDK verifies a
stream (:meth:`clients.member.MemberClient.subscribe`): DSSE signature over the exact
bytes, the publisher's key valid at that ledger index (key events checked against the
operator's key), sharing re-checked, inclusion of each record in a signed checkpoint
and consistency of every checkpoint with the last one trusted. The trusted checkpoint
travels in the fetch checkpoint, so a resumed fetch keeps checking consistency with
what the previous one saw; an entry that fails verification is skipped and logged.

Updates are keyed per signal, ``"<publisher>/<signal_id>"``, not per hash: a new
version replaces the record under the same key, a retraction is an update whose value
is ``None``, and so is a signal whose ``valid_until`` has passed (at the first fetch
after that time: the checkpoint keeps the pending expiry times). Two members sharing
the same hash stay two records; :meth:`naive_convert_to_signal_type` merges them per
hash for the index. HMA stores each key as one bank content.

``fetch_iter`` yields at least every 1,000 updates or every 2 seconds, with a
checkpoint holding the next ledger index to read, a progress timestamp (the newest
``accepted_at`` seen, in seconds, never decreasing), the trusted checkpoint note and
the pending expiries. ``is_stale()`` is always False: the ledger keeps every entry
forever, so a cursor never expires.

Configuration (``threatexchange config collab edit trustwire NAME --create …``) names
the exchange, the member and the two trust anchors (the operator's public key, the
log's verifier key). The member's signing key comes from the credentials: the
``TX_TRUSTWIRE_KEY`` environment variable or the ``~/.txtrustwire_key`` file (the hex
seed ``trustwire member keygen`` writes), or the collab's ``key_file``.

Not carried over: opinions (they stay in Trustwire, where ``trustwire member
feedback`` shows them) and the retroactive withdrawal of signals signed by a key later
revoked as compromised (the SDK's bank does that; this stateless fetcher logs the
revocation). ``report_opinion`` is not implemented (pytx treats it as optional).

The module avoids ``from __future__ import annotations``: pytx's ``config collab
edit`` builds its flags from the dataclass fields' real types.
"""

import logging
import time
import typing as t
from dataclasses import dataclass, field
from pathlib import Path

from threatexchange.exchanges import auth
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults
from threatexchange.exchanges.signal_exchange_api import SignalExchangeAPI
from threatexchange.signal_type.signal_base import SignalType

from clients.member import MemberClient
from clients.threatexchange.signal_types import to_pytx
from clients.transport import client_tls
from exchange.core.entries import enum_label, timestamp_to_ms
from exchange.core.errors import UntrustedEntry
from exchange.core.keyfiles import public_key_from_hex, signer_from_hex
from exchange.core.keys import Signer
from exchange.core.logview import LogView
from exchange.pb.trustwire.v1 import entries_pb2 as pb

__all__ = [
    "TrustwireCheckpoint",
    "TrustwireCollabConfig",
    "TrustwireCredentials",
    "TrustwireSignalExchangeAPI",
    "TrustwireSignalMetadata",
]

log = logging.getLogger(__name__)

API_NAME = "trustwire"
YIELD_EVERY_UPDATES = 1000
YIELD_EVERY_S = 2.0


@dataclass
class _TrustwireCollabRequired:
    exchange: str = field(metadata={"help": "host:port of the Trustwire exchange", "metavar": "HOST:PORT"})
    member_id: str = field(metadata={"help": "your member id at the exchange", "metavar": "MEMBER"})
    operator_public_key: str = field(
        metadata={"help": "the operator's Ed25519 public key, hex (trust anchor for keys)", "metavar": "HEX"}
    )
    log_key: str = field(
        metadata={"help": "the log's verifier key (trust anchor for checkpoints)", "metavar": "VKEY"}
    )


@dataclass
class TrustwireCollabConfig(CollaborationConfigWithDefaults, _TrustwireCollabRequired):
    """What to fetch and whom to trust. Plain types only: round-trips as JSON."""

    api: str = API_NAME
    key_file: t.Optional[str] = field(
        default=None, metadata={"help": "file holding your hex signing seed (else the credentials)", "metavar": "PATH"}
    )
    tls_ca_file: t.Optional[str] = field(
        default=None, metadata={"help": "PEM CA of the exchange's certificate (enables TLS)", "metavar": "PATH"}
    )
    tls_cert_file: t.Optional[str] = field(
        default=None, metadata={"help": "PEM client certificate, for an exchange requiring mutual TLS", "metavar": "PATH"}
    )
    tls_key_file: t.Optional[str] = field(
        default=None, metadata={"help": "unencrypted PEM private key of tls_cert_file", "metavar": "PATH"}
    )
    witnesses: t.List[str] = field(
        default_factory=list, metadata={"help": "witness verifier keys whose cosignatures count", "metavar": "VKEY"}
    )
    witness_quorum: int = field(default=0, metadata={"help": "cosignatures required on checkpoints"})


@dataclass
class TrustwireCredentials(auth.CredentialHelper):
    """The member's Ed25519 signing seed (64 hex characters)."""

    ENV_VARIABLE: t.ClassVar[str] = "TX_TRUSTWIRE_KEY"
    FILE_NAME: t.ClassVar[str] = "~/.txtrustwire_key"

    seed_hex: str = field(repr=False)

    @classmethod
    def _from_str(cls, s: str) -> "TrustwireCredentials":
        return cls(seed_hex=s.strip())

    def _are_valid(self) -> bool:
        try:
            return len(bytes.fromhex(self.seed_hex)) == 32
        except ValueError:
            return False

    def signer(self) -> Signer:
        return signer_from_hex(self.seed_hex)


@dataclass
class TrustwireCheckpoint(state.FetchCheckpointBase):
    """Where a fetch resumes. Plain types only: round-trips as JSON."""

    next_index: int = 0
    progress_ts: int = 0
    trusted_checkpoint: str = ""
    expiries: t.Dict[str, int] = field(default_factory=dict)

    def is_stale(self) -> bool:
        return False  # the ledger keeps every entry: a cursor never expires

    def get_progress_timestamp(self) -> int:
        return self.progress_ts


@dataclass
class TrustwireSignalMetadata(state.FetchedSignalMetadata):
    """One verified Trustwire signal, with its provenance. Plain, picklable."""

    publisher: str
    signal_id: str
    ledger_index: int
    trustwire_type: str
    signal_type: str
    signal_value: str
    labels: t.List[str] = field(default_factory=list)
    confidence: int = 50
    severity: str = "unspecified"
    tlp: str = "unspecified"
    groups: t.List[str] = field(default_factory=list)
    accepted_at_ms: int = 0
    valid_until_ms: t.Optional[int] = None
    description: str = ""
    is_mine: bool = False
    also: t.List[str] = field(default_factory=list)
    """Other signals with the same value ("publisher/signal_id#index"), after a merge."""

    @property
    def key(self) -> str:
        return f"{self.publisher}/{self.signal_id}"

    def get_as_opinions(self) -> t.Sequence[state.SignalOpinion]:
        category = (
            state.SignalOpinionCategory.POSITIVE_CLASS
            if self.confidence >= 50
            else state.SignalOpinionCategory.INVESTIGATION_SEED
        )
        return [state.SignalOpinion(self.is_mine, category, set(self.labels))]

    def __str__(self) -> str:
        where = f"{self.publisher}/{self.signal_id}#{self.ledger_index}"
        if self.also:
            where += " +" + ",".join(self.also)
        return f"{super().__str__()} {where}"


_Delta = state.FetchDelta[str, TrustwireSignalMetadata, TrustwireCheckpoint]



class TrustwireSignalExchangeAPI(
    auth.SignalExchangeWithAuth[TrustwireCollabConfig, TrustwireCredentials],
    SignalExchangeAPI[TrustwireCollabConfig, TrustwireCheckpoint, TrustwireSignalMetadata, str, TrustwireSignalMetadata],
):
    """Fetch verified signals from a Trustwire exchange into pytx / HMA."""

    def __init__(self, collab: TrustwireCollabConfig, client: MemberClient) -> None:
        self.collab = collab
        self.client = client

    @classmethod
    def get_name(cls) -> str:
        return API_NAME

    @staticmethod
    def get_config_cls() -> type[TrustwireCollabConfig]:
        return TrustwireCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> type[TrustwireCheckpoint]:
        return TrustwireCheckpoint

    @staticmethod
    def get_record_cls() -> type[TrustwireSignalMetadata]:
        return TrustwireSignalMetadata

    @staticmethod
    def get_credential_cls() -> type[TrustwireCredentials]:
        return TrustwireCredentials

    @classmethod
    def for_collab(
        cls, collab: TrustwireCollabConfig, credentials: TrustwireCredentials | None = None
    ) -> "TrustwireSignalExchangeAPI":
        if credentials is None and collab.key_file:
            credentials = TrustwireCredentials._from_str(Path(collab.key_file).expanduser().read_text())
            if not credentials._are_valid():
                raise auth.SignalExchangeAPIInvalidAuthException(cls, f"{collab.key_file} is not a hex Ed25519 seed")
        if credentials is None:
            credentials = TrustwireCredentials.get(cls)
        ca, cert, key = (Path(f).expanduser() if f else None for f in (collab.tls_ca_file, collab.tls_cert_file, collab.tls_key_file))
        tls = client_tls(ca, cert, key)
        client = MemberClient(
            collab.exchange,
            member_id=collab.member_id,
            signer=credentials.signer(),
            operator_key=public_key_from_hex(collab.operator_public_key),
            log_key=collab.log_key,
            witnesses=tuple(collab.witnesses),
            witness_quorum=collab.witness_quorum,
            tls=tls,
        )
        return cls(collab, client)

    def close(self) -> None:
        self.client.close()

    # -- converting ---------------------------------------------------------------------

    def _record(self, s: pb.Signal, index: int, accepted_at_ms: int) -> TrustwireSignalMetadata | None:
        converted = to_pytx(s.type, s.value)
        if converted is None:
            return None
        pytx_type, pytx_value = converted
        return TrustwireSignalMetadata(
            publisher=s.member_id,
            signal_id=s.signal_id,
            ledger_index=index,
            trustwire_type=s.type,
            signal_type=pytx_type,
            signal_value=pytx_value,
            labels=sorted(s.labels),
            confidence=s.confidence,
            severity=enum_label(pb.Severity, s.severity, "SEVERITY_"),
            tlp=enum_label(pb.Tlp, s.sharing.tlp, "TLP_"),
            groups=list(s.sharing.groups),
            accepted_at_ms=accepted_at_ms,
            valid_until_ms=timestamp_to_ms(s.valid_until) if s.HasField("valid_until") else None,
            description=s.description,
            is_mine=s.member_id == self.collab.member_id,
        )

    @classmethod
    def naive_convert_to_signal_type(
        cls,
        signal_types: t.Sequence[type[SignalType]],
        collab: TrustwireCollabConfig,
        fetched: t.Mapping[str, TrustwireSignalMetadata],
    ) -> dict[type[SignalType], dict[str, TrustwireSignalMetadata]]:
        by_name = {st.get_name(): st for st in signal_types}
        out: dict[type[SignalType], dict[str, TrustwireSignalMetadata]] = {}
        for record in fetched.values():
            if record is None:
                continue
            s_type = by_name.get(record.signal_type)
            if s_type is None:
                continue
            try:
                value = s_type.validate_signal_str(record.signal_value)
            except ValueError:
                log.warning("invalid %s value in %s", record.signal_type, record.key)
                continue
            per_type = out.setdefault(s_type, {})
            existing = per_type.get(value)
            per_type[value] = record if existing is None else _merge(existing, record)
        return out

    # -- fetching -----------------------------------------------------------------------

    def fetch_iter(
        self,
        supported_signal_types: t.Sequence[type[SignalType]],
        checkpoint: TrustwireCheckpoint | None,
    ) -> t.Iterator["_Delta"]:
        cp = checkpoint or TrustwireCheckpoint()
        view = LogView(
            self.collab.log_key,
            tuple(self.collab.witnesses),
            self.collab.witness_quorum,
            trusted_note=cp.trusted_checkpoint or None,
        )
        next_index, progress = cp.next_index, cp.progress_ts
        expiries = dict(cp.expiries)
        updates: dict[str, TrustwireSignalMetadata | None] = {}
        now_ms = int(time.time() * 1000)
        for key, expires in sorted(expiries.items()):
            if expires <= now_ms:
                updates[key] = None
                del expiries[key]

        def delta() -> "_Delta":
            trusted = view.trusted.note if view.trusted is not None else cp.trusted_checkpoint
            return _Delta(
                dict(updates),
                TrustwireCheckpoint(
                    next_index=next_index, progress_ts=progress, trusted_checkpoint=trusted, expiries=dict(expiries)
                ),
            )

        untrusted = 0

        def on_untrusted(exc: UntrustedEntry) -> None:
            nonlocal untrusted
            untrusted += 1
            log.warning("entry failed verification and was skipped: %s", exc)

        last_yield = time.monotonic()
        yielded = False
        for v in self.client.subscribe(from_index=next_index, follow=False, on_untrusted=on_untrusted, view=view):
            next_index = v.index + 1
            progress = max(progress, v.accepted_at_ms // 1000)
            e = v.entry
            if isinstance(e, pb.Signal):
                key = f"{e.member_id}/{e.signal_id}"
                record = self._record(e, v.index, v.accepted_at_ms)
                until: int | None = record.valid_until_ms if record is not None else None
                if record is not None and until is not None and until <= now_ms:
                    record = None  # already expired
                updates[key] = record
                if record is not None and until is not None:
                    expiries[key] = until
                else:
                    expiries.pop(key, None)
            elif isinstance(e, pb.Retraction):
                key = f"{e.signal.member_id}/{e.signal.signal_id}"
                updates[key] = None
                expiries.pop(key, None)
            elif isinstance(e, pb.KeyEvent) and e.WhichOneof("event") == "key_revoked" and e.key_revoked.compromised:
                log.warning(
                    "key %s… was revoked as compromised at entry %d; its signals stay fetched: check them with "
                    "`trustwire member sync`",
                    e.key_revoked.keyid[:16],
                    v.index,
                )
            if len(updates) >= YIELD_EVERY_UPDATES or time.monotonic() - last_yield >= YIELD_EVERY_S:
                yield delta()
                yielded = True
                updates.clear()
                last_yield = time.monotonic()
        if updates or not yielded:
            yield delta()
        if untrusted:
            log.warning("%d entries failed verification and were skipped", untrusted)


def _merge(a: TrustwireSignalMetadata, b: TrustwireSignalMetadata) -> TrustwireSignalMetadata:
    """Two signals with the same value: one index entry carrying both provenances."""
    first, second = (a, b) if (a.ledger_index <= b.ledger_index) else (b, a)
    return TrustwireSignalMetadata(
        publisher=first.publisher,
        signal_id=first.signal_id,
        ledger_index=first.ledger_index,
        trustwire_type=first.trustwire_type,
        signal_type=first.signal_type,
        signal_value=first.signal_value,
        labels=sorted(set(first.labels) | set(second.labels)),
        confidence=max(first.confidence, second.confidence),
        severity=first.severity,
        tlp=first.tlp,
        groups=sorted(set(first.groups) | set(second.groups)),
        accepted_at_ms=first.accepted_at_ms,
        valid_until_ms=first.valid_until_ms,
        description=first.description,
        is_mine=first.is_mine or second.is_mine,
        also=[*first.also, f"{second.publisher}/{second.signal_id}#{second.ledger_index}", *second.also],
    )
