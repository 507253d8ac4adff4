"""The one table mapping each Trustwire signal type to STIX 2.1 (keyed by type name).

Each row says how a normalized value becomes a STIX pattern and whether the type
also needs the ``trustwire-signal`` extension to be read back exactly (a type STIX
has no vocabulary for: PDQ, video MD5, account indicators, text). Signal-type
plug-ins can later own their row; nothing else in ``clients.stix`` knows about types.

=========  ===============================================  ==========
type       pattern                                          extension
=========  ===============================================  ==========
md5        ``[file:hashes.MD5 = 'v']``                      no
sha1       ``[file:hashes.'SHA-1' = 'v']``                  no
sha256     ``[file:hashes.'SHA-256' = 'v']``                no
url        ``[url:value = 'v']``                            no
domain     ``[domain-name:value = 'v']``                    no
video_md5  ``[file:hashes.MD5 = 'v']``                      yes (vs. md5)
pdq        ``[file:hashes.PDQ = 'v']``                      yes
account    ``[user-account:user_id = 'v']`` (HMAC form)     yes
text, any  ``[x-trustwire-signal:value = 'v']``             yes
=========  ===============================================  ==========
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["StixType", "STIX_TYPES", "pattern_for", "type_from_pattern", "needs_extension"]


@dataclass(frozen=True, slots=True, kw_only=True)
class StixType:
    name: str
    object_path: str  # "<sco type>:<property path>" compared with '=' in the pattern
    extension: bool  # the pattern alone does not say which Trustwire type it is


STIX_TYPES: dict[str, StixType] = {
    t.name: t
    for t in (
        StixType(name="md5", object_path="file:hashes.MD5", extension=False),
        StixType(name="sha1", object_path="file:hashes.'SHA-1'", extension=False),
        StixType(name="sha256", object_path="file:hashes.'SHA-256'", extension=False),
        StixType(name="url", object_path="url:value", extension=False),
        StixType(name="domain", object_path="domain-name:value", extension=False),
        StixType(name="video_md5", object_path="file:hashes.MD5", extension=True),
        StixType(name="pdq", object_path="file:hashes.PDQ", extension=True),
        StixType(name="account", object_path="user-account:user_id", extension=True),
    )
}
_GENERIC = "x-trustwire-signal:value"
# a single comparison, as every pattern this module writes (and most hash feeds) has
_COMPARISON = re.compile(r"^\[\s*([a-z0-9-]+:[A-Za-z0-9_.'\-]+)\s*=\s*'((?:[^'\\]|\\.)*)'\s*\]$")
_PATH_ALIASES = {  # what other producers write for the same hashes
    "file:hashes.'MD5'": "file:hashes.MD5",
    "file:hashes.'SHA1'": "file:hashes.'SHA-1'",
    "file:hashes.SHA1": "file:hashes.'SHA-1'",
    "file:hashes.'SHA256'": "file:hashes.'SHA-256'",
    "file:hashes.SHA256": "file:hashes.'SHA-256'",
    "file:hashes.'PDQ'": "file:hashes.PDQ",
}


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def pattern_for(type_name: str, value: str) -> str:
    """The STIX pattern of a normalized value."""
    row = STIX_TYPES.get(type_name)
    return f"[{row.object_path if row else _GENERIC} = '{_quote(value)}']"


def needs_extension(type_name: str) -> bool:
    row = STIX_TYPES.get(type_name)
    return row is None or row.extension


def type_from_pattern(pattern: str) -> tuple[str, str] | None:
    """(type, value) of a single-comparison pattern this table knows, else None.

    A bare ``file:hashes.MD5`` reads back as ``md5`` (``video_md5`` needs the extension)."""
    m = _COMPARISON.match(pattern.strip())
    if m is None:
        return None
    path = _PATH_ALIASES.get(m.group(1), m.group(1))
    value = re.sub(r"\\(.)", r"\1", m.group(2))
    for row in STIX_TYPES.values():
        if row.object_path == path and not (row.extension and row.name == "video_md5"):
            return row.name, value
    return None
