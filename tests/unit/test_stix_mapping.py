"""The STIX mapping table, the readers of bulk input, and the TAXII users file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from stix2validator import ValidationOptions, validate_instance

from clients.bank import BankOpinion, BankSignal
from clients.bulk.readers import CsvMapping, Problem, Row, derived_id, read_rows
from clients.stix import STIX_TYPES, bundle, indicator, opinion_object, pattern_for, static_objects, type_from_pattern
from clients.taxii.auth import authenticate, load_users, new_token
from exchange.core.errors import ConfigError, InvalidInput
from exchange.pb.trustwire.v1 import entries_pb2 as pb


def _signal(type_: str, value: str, **kw: object) -> BankSignal:
    base: dict[str, object] = dict(
        publisher="alice", signal_id=f"s-{type_}", index=7, type=type_, value=value, labels=("csam",), confidence=80,
        severity=pb.SEVERITY_HIGH, groups=("g",), tlp=pb.TLP_AMBER_STRICT, valid_from_ms=None, valid_until_ms=None,
        created_at_ms=1_767_225_600_000, retracted_index=None, accepted_at_ms=1_767_225_601_000,
    )
    base.update(kw)
    return BankSignal(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize("type_,value", [
    ("md5", "d41d8cd98f00b204e9800998ecf8427e"),
    ("sha1", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),
    ("sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
    ("url", "https://example.invalid/it's?q=a\\b"),
    ("domain", "example.invalid"),
    ("pdq", "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"),
    ("account", "examplechat:email:00ff"),
])
def test_pattern_round_trips_through_the_table(type_: str, value: str) -> None:
    assert type_from_pattern(pattern_for(type_, value)) == (type_, value)


def test_video_md5_and_unknown_types_need_the_extension() -> None:
    assert type_from_pattern(pattern_for("video_md5", "0" * 32)) == ("md5", "0" * 32)
    assert STIX_TYPES["video_md5"].extension and STIX_TYPES["pdq"].extension and not STIX_TYPES["md5"].extension
    assert type_from_pattern(pattern_for("text", "buy now")) is None
    assert type_from_pattern("[file:hashes.MD5 = 'a'] OR [file:hashes.MD5 = 'b']") is None


def test_every_type_revocation_and_opinion_validate() -> None:
    sigs = [_signal(t, v) for t, v in [("md5", "0" * 32), ("text", "buy now"), ("video_md5", "1" * 32)]]
    sigs.append(_signal("url", "https://x.invalid/", signal_id="r", retracted_index=9, retracted_at_ms=1_767_225_700_000,
                        valid_until_ms=1_800_000_000_000))
    ops = [BankOpinion(publisher="alice", signal_id="s-md5", author=a, verdict=v, index=i, accepted_at_ms=1_767_225_609_000)
           for i, (a, v) in enumerate([("bob", "seen"), ("carol", "false_positive"), ("dave", "disputed")], 10)]
    b = json.loads(bundle([*static_objects(["alice", "bob", "carol", "dave"]), *map(indicator, sigs),
                           *map(opinion_object, ops)]).serialize())
    result = validate_instance(b, ValidationOptions(version="2.1"))
    assert result.is_valid, [str(e) for e in result.errors]
    revoked = [o for o in b["objects"] if o.get("revoked")]
    assert len(revoked) == 1 and revoked[0]["modified"] > revoked[0]["created"]
    assert sorted(o["opinion"] for o in b["objects"] if o["type"] == "opinion") == ["neutral", "strongly-disagree"]
    assert all(o["object_marking_refs"] == ["marking-definition--939a9414-2ddd-4d32-a0cd-375ea402b003"]
               for o in b["objects"] if o["type"] == "indicator")  # TLP:AMBER+STRICT
    assert indicator(sigs[0])["id"] == indicator(_signal("md5", "f" * 32))["id"]  # the id is the signal's, not the value's


def test_csv_mapping_defaults_lists_and_derived_ids() -> None:
    m = CsvMapping.parse(["value=Hash", "labels=Tags"], {"type": "md5", "groups": ["g"], "tlp": None})
    text = "Hash,Tags,Extra\nABC,a;b|c,x\n\n,,\n"
    rows = list(read_rows("csv", text, mapping=m))
    assert rows == [Row(line=2, obj={"type": "md5", "groups": ["g"], "value": "ABC", "labels": ["a", "b", "c"],
                                     "id": derived_id("imp-", "md5", "ABC")})]
    assert derived_id("imp-", "MD5", "abc ") == derived_id("imp-", "md5", "ABC")


def test_csv_problems_name_lines() -> None:
    m = CsvMapping.parse([], {"type": "md5", "groups": ["g"]})
    rows = list(read_rows("csv", 'value,confidence\n00,high\n"01,2\n', mapping=m))
    assert [r.line for r in rows if isinstance(r, Problem)][:1] == [2]
    missing = list(read_rows("csv", "hash\n00\n", mapping=CsvMapping.parse(["value=digest"], {"type": "md5"})))
    assert isinstance(missing[0], Problem) and "no column 'digest'" in missing[0].message
    with pytest.raises(InvalidInput):
        CsvMapping.parse(["colour=Hash"], {})


def test_stix_reader_skips_revoked_and_reports_unknown_patterns() -> None:
    objects = [
        {"type": "indicator", "id": "indicator--11111111-1111-4111-8111-111111111111", "pattern_type": "stix",
         "pattern": "[file:hashes.'SHA-256' = 'ab']", "labels": ["x"], "confidence": 60, "modified": "2026-01-01T00:00:00Z",
         "object_marking_refs": ["marking-definition--bab4a63c-aed9-4cf5-a766-dfca5abac2bb"]},
        {"type": "indicator", "id": "indicator--22222222-2222-4222-8222-222222222222", "revoked": True,
         "pattern": "[file:hashes.MD5 = 'ab']"},
        {"type": "indicator", "id": "indicator--33333333-3333-4333-8333-333333333333", "pattern": "[ipv4-addr:value = '1.2.3.4']"},
        {"type": "identity", "id": "identity--44444444-4444-4444-8444-444444444444"},
    ]
    rows = list(read_rows("stix", json.dumps({"type": "bundle", "objects": objects}), member_id="bob"))
    assert isinstance(rows[0], Row) and rows[0].obj["type"] == "sha256" and rows[0].obj["tlp"] == "green"
    assert rows[0].obj["id"] == "stix-11111111-1111-4111-8111-111111111111"
    assert isinstance(rows[1], Problem) and rows[1].line == 3 and len(rows) == 2
    assert isinstance(list(read_rows("stix", "[]"))[0], Problem)


def test_taxii_users_file(tmp_path: Path) -> None:
    token, digest = new_token()
    f = tmp_path / "u.toml"
    f.write_text(f'[users.misp]\ntoken_sha256 = "{digest}"\ngroups = ["g"]\n')
    users = load_users(f)
    import base64

    header = "Basic " + base64.b64encode(f"misp:{token}".encode()).decode()
    user = authenticate(header, users)
    assert user is not None and user.may_read("g") and not user.may_read("h") and not user.may_read(None)
    assert authenticate(header.replace("Basic", "Bearer"), users) is None
    assert authenticate("Basic !!!", users) is None
    for bad in ('[users.x]\ntoken_sha256 = "zz"\n', '[users.x]\npassword = "p"\n', "", "[other]\n"):
        f.write_text(bad)
        with pytest.raises(ConfigError):
            load_users(f)
