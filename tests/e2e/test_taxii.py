"""The member's TAXII 2.1 server, read by taxii2-client, over a bank synced from a real exchange."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from stix2validator import ValidationOptions, validate_instance
from taxii2client.v21 import Server, as_pages

from clients.bank import Bank
from clients.member import MemberClient
from clients.stix.objects import checkpoint_of
from clients.taxii import RunningTaxii, TaxiiSettings, collection_id, create_app, load_users, serve_in_thread
from tests.conftest import GROUP_ALL, GROUP_NCII, TaskForce, accepted

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
TOKEN = "analyst-token-INSECURE-test-only"
NARROW_TOKEN = "narrow-token-INSECURE-test-only"


def validate(objects: list[dict[str, Any]]) -> None:
    bundle = {"type": "bundle", "id": "bundle--6f0b1a8e-7c7e-4a37-9b52-2a1e4d1f9c01", "objects": objects}
    result = validate_instance(bundle, ValidationOptions(version="2.1"))
    assert result.is_valid, [str(e) for e in result.errors]


@pytest.fixture
def taxii(taskforce: TaskForce, tmp_path: Path) -> Iterator[tuple[RunningTaxii, MemberClient]]:
    users = tmp_path / "taxii-users.toml"
    users.write_text(
        f'[users.analyst]\ntoken_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n'
        f'[users.narrow]\ntoken_sha256 = "{hashlib.sha256(NARROW_TOKEN.encode()).hexdigest()}"\n'
        f'groups = ["{GROUP_ALL}"]\n'
    )
    alice = taskforce.client("alice", state=True)
    assert alice.store is not None
    bank = Bank.reader(alice.store.path)  # the server's own connection, as `member taxii` opens it
    app = create_app(bank, load_users(users), TaxiiSettings(member_id="alice"),
                     checkpoint=lambda: checkpoint_of(alice.log_view.trusted), member_groups=alice.groups)
    running = serve_in_thread(app)
    try:
        yield running, alice
    finally:
        running.stop()


def _all_objects(collection: Any, per_request: int = 1000, **kw: Any) -> list[dict[str, Any]]:
    return [o for env in as_pages(collection.get_objects, per_request=per_request, **kw) for o in env.get("objects", [])]


def test_publish_appears_and_retraction_revokes(taskforce: TaskForce, taxii: tuple[RunningTaxii, MemberClient]) -> None:
    running, alice = taxii
    bob, carol = taskforce.client("bob"), taskforce.client("carol")
    accepted(alice.publish([
        alice.signal("md5", MD5, signal_id="a-md5", groups=[GROUP_ALL], labels=["csam"], confidence=90, tlp="amber"),
        alice.signal("pdq", PDQ, signal_id="a-pdq", groups=[GROUP_NCII], tlp="amber+strict"),
    ]))
    accepted(bob.publish([bob.signal("url", "https://bad.example.invalid/x", signal_id="b-url", groups=[GROUP_ALL])]))
    accepted(carol.publish([carol.opinion("alice", "a-md5", "true_positive")]))
    accepted(bob.publish([bob.opinion("alice", "a-md5", "seen")]))
    alice.sync()

    server = Server(running.url, user="analyst", password=TOKEN)
    root = server.api_roots[0]
    by_id = {c.id: c for c in root.collections}
    assert set(by_id) == {collection_id(None), collection_id(GROUP_ALL), collection_id(GROUP_NCII)}
    everything = by_id[collection_id(None)]
    objects = _all_objects(everything)
    validate(objects)
    indicators = {o["pattern"]: o for o in objects if o["type"] == "indicator"}
    assert set(indicators) == {f"[file:hashes.MD5 = '{MD5}']", f"[file:hashes.PDQ = '{PDQ}']",
                               "[url:value = 'https://bad.example.invalid/x']"}
    md5 = indicators[f"[file:hashes.MD5 = '{MD5}']"]
    assert md5["labels"] == ["csam"] and md5["confidence"] == 90 and not md5.get("revoked", False)
    assert md5["object_marking_refs"] == ["marking-definition--55d920b0-5e8b-4f79-9ee9-91f868d9b421"]  # TLP:AMBER
    prov = next(v for k, v in md5["extensions"].items() if "ledger_index" in v)
    assert prov["ledger_index"] >= 0 and prov["checkpoint"]["tree_size"] > prov["ledger_index"]
    assert prov["signing_keyid"] == alice.signer.keyid
    assert {o["type"] for o in objects} >= {"identity", "marking-definition", "extension-definition", "opinion", "sighting"}
    assert [o["opinion"] for o in objects if o["type"] == "opinion"] == ["strongly-agree"]
    ids = {o["id"] for o in objects}
    refs = {r for o in objects for r in [o.get("created_by_ref"), *o.get("object_marking_refs", []),
                                         *o.get("where_sighted_refs", []), *o.get("extensions", {})] if r}
    tlp2 = "extension-definition--60a3c5c5-0d10-413e-aab3-9e08dde9e88d"  # OASIS's own, known to every TLP 2.0 reader
    assert refs - {tlp2} <= ids  # no dangling reference: authors of opinions have identities too

    # paging by `next` (2 per page) gives the same objects as one page
    assert [o["id"] for o in _all_objects(everything, per_request=2)] == [o["id"] for o in objects]
    ncii = {o["id"] for o in _all_objects(by_id[collection_id(GROUP_NCII)]) if o["type"] == "indicator"}
    assert ncii == {indicators[f"[file:hashes.PDQ = '{PDQ}']"]["id"]}

    manifest = everything.get_manifest()
    last_added = max(m["date_added"] for m in manifest["objects"])
    assert {m["id"] for m in manifest["objects"]} == {o["id"] for o in objects}

    # a retraction on the exchange becomes the revoked version of the indicator
    accepted(alice.publish([alice.retraction("a-md5", "false_positive")]))
    alice.sync()
    newer = everything.get_objects(added_after=last_added)["objects"]
    assert [(o["id"], o["revoked"]) for o in newer] == [(md5["id"], True)]
    validate(newer)
    assert newer[0]["modified"] > md5["modified"]
    assert everything.object_versions(md5["id"])["versions"] == [newer[0]["modified"]]
    assert {m["version"] for m in everything.get_manifest(added_after=last_added)["objects"]} == {newer[0]["modified"]}
    assert everything.get_object(md5["id"])["objects"][0]["revoked"] is True


def test_missing_credentials_are_refused(taxii: tuple[RunningTaxii, MemberClient]) -> None:
    running, _ = taxii
    r = requests.get(running.url, headers={"Accept": "application/taxii+json;version=2.1"}, timeout=10)
    assert r.status_code == 401 and r.json()["http_status"] == "401" and "Basic" in r.headers["WWW-Authenticate"]


def test_wrong_token_is_refused(taxii: tuple[RunningTaxii, MemberClient]) -> None:
    running, _ = taxii
    for user, password in (("analyst", "guess"), ("nobody", TOKEN), ("narrow", TOKEN)):
        r = requests.get(running.url, auth=(user, password), timeout=10)
        assert r.status_code == 401, (user, r.status_code)


def test_group_escalation_other_groups_collection_is_hidden(taskforce: TaskForce,
                                                            taxii: tuple[RunningTaxii, MemberClient]) -> None:
    running, alice = taxii
    accepted(alice.publish([alice.signal("pdq", PDQ, signal_id="a-pdq", groups=[GROUP_NCII])]))
    alice.sync()
    root = Server(running.url, user="narrow", password=NARROW_TOKEN).api_roots[0]
    assert [c.id for c in root.collections] == [collection_id(GROUP_ALL)]
    base = running.url.replace("/taxii2/", "/trustwire/collections/")
    for cid in (collection_id(GROUP_NCII), collection_id(None)):  # a narrow user cannot read everything either
        r = requests.get(f"{base}{cid}/objects/", auth=("narrow", NARROW_TOKEN), timeout=10)
        assert r.status_code == 404 and "collection" in r.json()["title"]


def test_write_attempt_is_refused_without_side_effect(taxii: tuple[RunningTaxii, MemberClient]) -> None:
    running, alice = taxii
    base = running.url.replace("/taxii2/", "/trustwire/collections/")
    r = requests.post(f"{base}{collection_id(None)}/objects/", auth=("analyst", TOKEN),
                      data=json.dumps({"objects": []}), timeout=10,
                      headers={"Content-Type": "application/taxii+json;version=2.1"})
    assert r.status_code == 403 and r.json()["title"] == "read-only collection"
    assert alice.bank is not None and alice.bank.changes() == []


def test_bad_paging_parameters_are_400(taxii: tuple[RunningTaxii, MemberClient]) -> None:
    running, _ = taxii
    base = running.url.replace("/taxii2/", "/trustwire/collections/")
    for query in ("limit=abc", "limit=0", "next=zz", "added_after=yesterday"):
        r = requests.get(f"{base}{collection_id(None)}/objects/?{query}", auth=("analyst", TOKEN), timeout=10)
        assert r.status_code == 400, query


def test_member_taxii_command_serves_what_the_exchange_accepts(served: tuple[str, Any, str], tmp_path: Path) -> None:
    """`trustwire member taxii` as a process: sync, serve, follow the exchange."""
    import signal
    import subprocess
    import sys

    from clients.operator import OperatorClient
    from tests.conftest import KEYS_VALID_FROM_MS, insecure_signer, wait_until

    target, operator, vkey = served
    member = insecure_signer("taxii-member")
    op = OperatorClient(target, operator, origin="cli.test.invalid/log")
    accepted(op.publish([op.create_group("everyone", "Everyone", "amber"), op.enrol("m1", "M1", ["everyone"]),
                         op.add_key("m1", member.public_key, KEYS_VALID_FROM_MS)]))
    op.close()
    key = tmp_path / "m1.key"
    key.write_text(member.seed.hex())
    users = tmp_path / "users.toml"
    users.write_text(f'[users.analyst]\ntoken_sha256 = "{hashlib.sha256(TOKEN.encode()).hexdigest()}"\n')
    common = ["--exchange", target, "--member-id", "m1", "--key-file", str(key), "--operator-public-key",
              operator.public_key.hex(), "--log-key", vkey, "--state", str(tmp_path / "m1.db")]
    proc = subprocess.Popen([sys.executable, "-m", "clients.cli.main", "member", "taxii", "--listen", "127.0.0.1:0",
                             "--users", str(users), *common], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # bounded by pytest-timeout
        assert "discovery at" in line, proc.stderr.read() if proc.poll() is not None else line
        url = line.split("discovery at ")[1].strip()
        client = MemberClient(target, member_id="m1", signer=member, operator_key=operator.public_key, log_key=vkey)
        accepted(client.publish([client.signal("md5", MD5, signal_id="m-1", groups=["everyone"])]))
        client.close()
        everything = next(c for c in Server(url, user="analyst", password=TOKEN).api_roots[0].collections
                          if c.id == collection_id(None))
        wait_until(lambda: any(o["type"] == "indicator" for o in everything.get_objects().get("objects", [])))
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
