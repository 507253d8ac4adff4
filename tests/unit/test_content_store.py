"""The member's content store: hashes per (file, type), and the old fixed-column layout migrated."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clients.content import ContentStore
from clients.store import MemberStore
from exchange.core.signals import ContentHash

MD5 = "d41d8cd98f00b204e9800998ecf8427e"
SHA = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
PDQ = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"


def test_put_replaces_and_filters_by_quality(tmp_path: Path) -> None:
    content = ContentStore(MemberStore(tmp_path / "s.db"))
    content.put("a.png", [ContentHash("md5", MD5), ContentHash("pdq", PDQ, 40)], now_ms=1)
    assert content.refs_with("md5", MD5) == ["a.png"]
    assert content.all_of("pdq", min_quality=50) == []
    content.put("a.png", [ContentHash("pdq", PDQ, 90)], now_ms=2)
    assert content.refs_with("md5", MD5) == []  # a re-hash replaces every hash of the file
    assert content.all_of("pdq", min_quality=50) == [("a.png", PDQ)]


def test_old_fixed_column_state_file_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(
        "CREATE TABLE content (ref TEXT PRIMARY KEY, md5 TEXT NOT NULL, sha256 TEXT NOT NULL, pdq TEXT,"
        " pdq_quality INTEGER, hashed_at_ms INTEGER NOT NULL);"
    )
    conn.execute("INSERT INTO content VALUES ('img.png', ?, ?, ?, 100, 5)", (MD5, SHA, PDQ))
    conn.execute("INSERT INTO content VALUES ('doc.txt', ?, ?, NULL, NULL, 6)", (MD5, SHA))
    conn.commit()
    conn.close()

    content = ContentStore(MemberStore(path))
    assert sorted(content.refs_with("md5", MD5)) == ["doc.txt", "img.png"]
    assert sorted(content.refs_with("sha256", SHA)) == ["doc.txt", "img.png"]
    assert content.all_of("pdq", min_quality=50) == [("img.png", PDQ)]
    ContentStore(MemberStore(path))  # idempotent: the old table is gone
