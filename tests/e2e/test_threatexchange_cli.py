"""The real `threatexchange` CLI (python-threatexchange) fetching from a Trustwire exchange.

The CLI runs as a subprocess with its state in a temporary directory (TX_STATEDIR,
and HOME for the credential file lookup), against an exchange served on 127.0.0.1.
"""

from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from clients.media import hash_file
from tests.conftest import GROUP_ALL, GROUP_NCII, REPO, TaskForce, accepted, wait_until

from threatexchange.utils import dataclass_json  # the `test` extra installs it  # noqa: E402

from clients.threatexchange import (  # noqa: E402
    TrustwireCheckpoint,
    TrustwireCollabConfig,
    TrustwireCredentials,
    TrustwireSignalExchangeAPI,
    TrustwireSignalMetadata,
)

MEDIA = REPO / "seeds" / "media"
TIMEOUT_S = 120


def _tx_exe() -> list[str]:
    exe = shutil.which("threatexchange", path=str(Path(sys.executable).parent))
    return [exe] if exe else [sys.executable, "-m", "threatexchange.cli.main"]


class Tx:
    """`threatexchange …` with its state in a temporary directory."""

    def __init__(self, home: Path, key_hex: str) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.env = {
            **os.environ,
            "HOME": str(home),
            "TX_STATEDIR": str(home / "tx-state"),
            "TX_TRUSTWIRE_KEY": key_hex,
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }

    def __call__(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [*_tx_exe(), *args], capture_output=True, text=True, timeout=TIMEOUT_S, env=self.env, stdin=subprocess.DEVNULL
        )
        if ok:
            assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc


def test_threatexchange_cli_fetches_verifies_and_matches(tf: TaskForce, tmp_path: Path) -> None:
    original = hash_file(MEDIA / "orig-01.png")
    altered = MEDIA / "orig-01.resized.png"
    other = hash_file(MEDIA / "orig-02.png")
    third = hash_file(MEDIA / "orig-03.png")
    assert original.pdq is not None and other.pdq is not None and third.pdq is not None
    alice = tf.client("alice")
    accepted(alice.publish([
        alice.signal("pdq", original.pdq, groups=[GROUP_ALL], signal_id="img-1", labels=["csam"], confidence=90),
        alice.signal("md5", other.md5, groups=[GROUP_ALL], signal_id="file-2", labels=["ncii"]),
        alice.signal("url", "https://bad.example/x", groups=[GROUP_ALL], signal_id="url-1"),
        alice.signal("domain", "evil.example", groups=[GROUP_ALL], signal_id="dom-1"),
        alice.signal("text", "Buy Cheap Followers", groups=[GROUP_ALL], signal_id="txt-1", labels=["spam"]),
        alice.signal("account", "examplechat:id:777", groups=[GROUP_ALL], signal_id="acct-1"),
        alice.signal("pdq", other.pdq, groups=[GROUP_NCII], signal_id="hidden-from-bob"),
        # pytx 1.2.17's PDQ index finds nothing once saved if it holds a single hash: give it two
        alice.signal("pdq", third.pdq, groups=[GROUP_ALL], signal_id="img-3"),
    ]))

    tx = Tx(tmp_path / "home", tf.signers["bob"].seed.hex())
    added = tx("config", "extensions", "add", "clients.threatexchange")
    assert "trustwire" in added.stdout
    tx("config", "collab", "edit", "trustwire", "taskforce", "--create",
       "--exchange", tf.target, "--member-id", "bob",
       "--operator-public-key", tf.operator.public_key.hex(), "--log-key", tf.log_key)

    fetched = tx("fetch")
    assert "Up to date" in fetched.stderr, fetched.stderr

    match = tx("match", "photo", str(altered))
    assert "pdq" in match.stdout and "alice/img-1" in match.stdout and "csam" in match.stdout, match.stdout
    exact = tx("match", "photo", str(MEDIA / "orig-02.png"))
    assert "md5" in exact.stdout and "alice/file-2" in exact.stdout, exact.stdout
    assert "hidden-from-bob" not in exact.stdout  # bob cannot see the ncii-response group
    url = tx("match", "url", "--", "https://sub.evil.example/page")
    assert "alice/dom-1" in url.stdout, url.stdout
    text = tx("match", "text", "--", "get FREE likes, buy cheap followers today")
    assert "trend_query" in text.stdout and "alice/txt-1" in text.stdout, text.stdout
    account = tx("match", "account", "--", "ExampleChat:ID:777")
    assert "alice/acct-1" in account.stdout, account.stdout

    # the checkpoint on disk resumes where it stopped and records the trusted log
    state_files = list((tmp_path / "home" / "tx-state" / "fetched" / "trustwire").glob("*.pickle"))
    assert len(state_files) == 1
    with state_files[0].open("rb") as f:
        delta = pickle.load(f)  # the CLI's own storage format
    cp = delta.checkpoint
    assert isinstance(cp, TrustwireCheckpoint) and cp.next_index == tf.server.ledger.head()
    assert cp.trusted_checkpoint and not cp.is_stale() and cp.get_progress_timestamp() > 0
    assert set(delta.updates) == {"alice/img-1", "alice/file-2", "alice/url-1", "alice/dom-1", "alice/txt-1",
                                  "alice/acct-1", "alice/img-3"}

    # a retraction is a delete; a new version replaces the record under the same key
    accepted(alice.publish([
        alice.retraction("img-1", "false_positive"),
        alice.signal("md5", other.md5, groups=[GROUP_ALL], signal_id="file-2", labels=["ncii", "v2"]),
    ]))
    tx("fetch")
    gone = tx("match", "photo", str(altered))
    assert "img-1" not in gone.stdout, gone.stdout
    v2 = tx("match", "photo", str(MEDIA / "orig-02.png"))
    assert "v2" in v2.stdout, v2.stdout
    with state_files[0].open("rb") as f:
        later = pickle.load(f)
    assert "alice/img-1" not in later.updates
    assert later.checkpoint.next_index == tf.server.ledger.head()
    assert later.checkpoint.progress_ts >= cp.progress_ts

    # nothing new: a fetch is a no-op that keeps the checkpoint
    tx("fetch")
    with state_files[0].open("rb") as f:
        assert pickle.load(f).checkpoint.next_index == later.checkpoint.next_index


def test_fetch_iter_deletes_expired_and_resumes(tf: TaskForce) -> None:
    """The API directly: expiry is a delete at the first fetch after valid_until; the
    checkpoint resumes with the same trusted log; config, credentials and checkpoint
    round-trip as JSON; records pickle."""
    alice = tf.client("alice")
    now = alice._clock_ms()
    accepted(alice.publish([
        alice.signal("md5", "0" * 31 + "1", groups=[GROUP_ALL], signal_id="short", valid_until_ms=now + 1500),
        alice.signal("sha256", "a" * 64, groups=[GROUP_ALL], signal_id="long"),
        alice.signal("sha256", "b" * 64, groups=[GROUP_ALL], signal_id="old", valid_until_ms=now - 1),
    ]))
    collab = TrustwireCollabConfig(
        name="tf", exchange=tf.target, member_id="bob", operator_public_key=tf.operator.public_key.hex(),
        log_key=tf.log_key,
    )
    assert dataclass_json.dataclass_loads(dataclass_json.dataclass_dumps(collab), TrustwireCollabConfig) == collab
    creds = TrustwireCredentials(seed_hex=tf.signers["bob"].seed.hex())
    assert dataclass_json.dataclass_loads(dataclass_json.dataclass_dumps(creds), TrustwireCredentials) == creds
    assert creds.seed_hex not in repr(creds)

    from threatexchange.signal_type.md5 import VideoMD5Signal

    from clients.threatexchange import FileMD5Signal, FileSHA256Signal

    types = [FileMD5Signal, FileSHA256Signal, VideoMD5Signal]
    api = TrustwireSignalExchangeAPI.for_collab(collab, creds)
    try:
        deltas = list(api.fetch_iter(types, None))
    finally:
        api.close()
    merged: dict[str, TrustwireSignalMetadata | None] = {}
    for d in deltas:
        merged.update(d.updates)
    assert merged["alice/old"] is None  # already expired when fetched
    short, long_ = merged["alice/short"], merged["alice/long"]
    assert short is not None and long_ is not None and long_.signal_type == "sha256"
    assert pickle.loads(pickle.dumps(long_)) == long_
    cp = deltas[-1].checkpoint
    assert cp.expiries == {"alice/short": now + 1500}
    cp_json = dataclass_json.dataclass_dumps(cp)
    assert dataclass_json.dataclass_loads(cp_json, TrustwireCheckpoint) == cp
    converted = TrustwireSignalExchangeAPI.naive_convert_to_signal_type(types, collab, merged)  # type: ignore[arg-type]
    assert set(converted[FileSHA256Signal]) == {"a" * 64}

    # resume after the expiry time: the expired signal comes back as a delete
    wait_until(lambda: alice._clock_ms() > now + 1500, timeout=10)
    accepted(alice.publish([alice.signal("sha256", "c" * 64, groups=[GROUP_ALL], signal_id="new")]))
    api = TrustwireSignalExchangeAPI.for_collab(collab, creds)
    try:
        resumed = list(api.fetch_iter(types, dataclass_json.dataclass_loads(cp_json, TrustwireCheckpoint)))
    finally:
        api.close()
    updates: dict[str, TrustwireSignalMetadata | None] = {}
    for d in resumed:
        updates.update(d.updates)
        assert d.checkpoint.progress_ts >= cp.progress_ts
    assert updates["alice/short"] is None and updates["alice/new"] is not None
    assert "alice/long" not in updates  # resumed, not re-read
    assert resumed[-1].checkpoint.expiries == {}
