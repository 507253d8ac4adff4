"""python-threatexchange signal types for the Trustwire types pytx has none of.

| Trustwire   | pytx signal type (name)                 | matched as                          |
|-------------|-----------------------------------------|-------------------------------------|
| pdq         | ``PdqSignal`` (pdq)                     | Hamming distance <= 31 (pytx index) |
| video_md5   | ``VideoMD5Signal`` (video_md5)          | exact                               |
| url         | ``URLSignal`` (url)                     | exact (Trustwire's canonical form)  |
| text        | ``TrendQuerySignal`` (trend_query)      | case-insensitive substring          |
| md5         | :class:`FileMD5Signal` (md5)            | exact, MD5 of any photo or video    |
| sha1        | :class:`FileSHA1Signal` (sha1)          | exact                               |
| sha256      | :class:`FileSHA256Signal` (sha256)      | exact                               |
| domain      | :class:`DomainSignal` (domain)          | the URL's host or any sub-domain    |
| account     | :class:`AccountSignal` (account)        | exact ``platform:kind:identifier``  |
| vpdq        | pytx's ``VPDQSignal`` (vpdq)            | frame by frame (pytx's vpdq rule)   |

``vpdq`` is mapped when pytx's own vPDQ extension can be imported (it needs the
``vpdq`` package: ``pip install 'trustwire[video]'``); enable it next to this one
(``threatexchange config extensions add threatexchange.extensions.vpdq``) and fetched
vPDQ signals reach pytx's vPDQ index as its JSON frame lists.

A Trustwire ``text`` value (normalized keyword or phrase) is carried as a trend query
whose single term is the regex ``(?i)<escaped phrase>``, so pytx's trend-query index
finds it as a case-insensitive substring, as Trustwire's bank does.
"""

from __future__ import annotations

import hashlib
import re
import typing as t

from threatexchange.content_type.content_base import ContentType
from threatexchange.content_type.photo import PhotoContent
from threatexchange.content_type.url import URLContent
from threatexchange.content_type.video import VideoContent
from threatexchange.signal_type import signal_base
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.trend_query import TrendQuerySignal
from threatexchange.signal_type.url import URLSignal

from exchange.core import signals as tw_signals
from exchange.core.errors import InvalidValue

try:  # pytx's vPDQ extension imports the optional `vpdq` package
    from threatexchange.extensions.vpdq.vpdq import VPDQSignal

    _OPTIONAL: tuple[type[signal_base.SignalType], ...] = (VPDQSignal,)
except ImportError:  # pragma: no cover - exercised only without the `video` extra
    _OPTIONAL = ()

__all__ = [
    "AccountContent",
    "AccountSignal",
    "DomainSignal",
    "FileMD5Signal",
    "FileSHA1Signal",
    "FileSHA256Signal",
    "PYTX_CLASSES",
    "PYTX_TYPE_FOR",
    "pytx_type_for",
    "to_pytx",
]


class AccountContent(ContentType):
    """An account on the member's platform, given as a Trustwire account indicator
    (``platform:kind:identifier``; HMACs for e-mail, phone and username kinds)."""

    @classmethod
    def get_name(cls) -> str:
        return "account"


class _FileDigest(signal_base.SimpleSignalType, signal_base.BytesHasher):
    _ALGO: t.ClassVar[str]
    _DIGITS: t.ClassVar[int]

    @classmethod
    def get_content_types(cls) -> list[type[ContentType]]:
        return [PhotoContent, VideoContent]

    @classmethod
    def get_index_cls(cls) -> type[signal_base.TrivialSignalTypeIndex[t.Any]]:
        return signal_base.TrivialSignalTypeIndex

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        value = signal_str.strip().lower()
        if not re.fullmatch(f"[0-9a-f]{{{cls._DIGITS}}}", value):
            raise ValueError(f"not a {cls._ALGO} hex digest")
        return value

    @classmethod
    def hash_from_bytes(cls, bytes_: bytes) -> str:
        return hashlib.new(cls._ALGO, bytes_).hexdigest()


class FileMD5Signal(_FileDigest):
    """MD5 of any photo or video file (pytx only has ``video_md5``)."""

    _ALGO = "md5"
    _DIGITS = 32

    @classmethod
    def get_name(cls) -> str:
        return "md5"

    @staticmethod
    def get_examples() -> list[str]:
        return ["d41d8cd98f00b204e9800998ecf8427e"]


class FileSHA1Signal(_FileDigest):
    _ALGO = "sha1"
    _DIGITS = 40

    @classmethod
    def get_name(cls) -> str:
        return "sha1"

    @staticmethod
    def get_examples() -> list[str]:
        return ["da39a3ee5e6b4b0d3255bfef95601890afd80709"]


class FileSHA256Signal(_FileDigest):
    _ALGO = "sha256"
    _DIGITS = 64

    @classmethod
    def get_name(cls) -> str:
        return "sha256"

    @staticmethod
    def get_examples() -> list[str]:
        return ["e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]


class DomainSignal(signal_base.SimpleSignalType, signal_base.MatchesStr):
    """A domain: matches a URL (or bare host) on it or on any of its sub-domains."""

    @classmethod
    def get_name(cls) -> str:
        return "domain"

    @classmethod
    def get_content_types(cls) -> list[type[ContentType]]:
        return [URLContent]

    @classmethod
    def get_index_cls(cls) -> type[_DomainIndex]:
        return _DomainIndex

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        try:
            return tw_signals.normalize("domain", signal_str)
        except InvalidValue as exc:
            raise ValueError(exc.message) from exc

    @staticmethod
    def host_of(text: str) -> str:
        s = text.strip()
        if "://" in s:
            s = s.split("://", 1)[1]
        host = re.split(r"[/?#]", s, maxsplit=1)[0].rpartition("@")[2].split(":", 1)[0]
        try:
            return tw_signals.normalize("domain", host)
        except InvalidValue:
            return host.lower()

    @classmethod
    def matches_str(cls, signal: str, haystack: str) -> signal_base.SignalComparisonResult:
        host = cls.host_of(haystack)
        return signal_base.SignalComparisonResult.from_bool_only(host == signal or host.endswith("." + signal))

    @staticmethod
    def get_examples() -> list[str]:
        return ["example.com"]


class _DomainIndex(signal_base.TrivialLinearSearchMatchIndex[t.Any]):
    _SIGNAL_TYPE = DomainSignal


class AccountSignal(signal_base.SimpleSignalType, signal_base.TextHasher):
    """A Trustwire account indicator ``platform:kind:identifier``, matched exactly.

    Compute the value for your own users with ``clients.accounts.account_value``
    (the task-force secret never leaves your machine) and match it with
    ``threatexchange match account -- <value>``.
    """

    @classmethod
    def get_name(cls) -> str:
        return "account"

    @classmethod
    def get_content_types(cls) -> list[type[ContentType]]:
        return [AccountContent]

    @classmethod
    def get_index_cls(cls) -> type[signal_base.TrivialSignalTypeIndex[t.Any]]:
        return signal_base.TrivialSignalTypeIndex

    @classmethod
    def validate_signal_str(cls, signal_str: str) -> str:
        try:
            return tw_signals.normalize("account", signal_str)
        except InvalidValue as exc:
            raise ValueError(exc.message) from exc

    @classmethod
    def hash_from_str(cls, text: str) -> str:
        try:
            return tw_signals.normalize("account", text.strip())
        except InvalidValue:
            return ""

    @staticmethod
    def get_examples() -> list[str]:
        return ["examplechat:id:1234567"]


# pytx signal types by their pytx name: the ones pytx ships that Trustwire types map
# to, and the ones this module adds.
_CLASSES: tuple[type[signal_base.SignalType], ...] = (
    PdqSignal, VideoMD5Signal, URLSignal, TrendQuerySignal,
    FileMD5Signal, FileSHA1Signal, FileSHA256Signal, DomainSignal, AccountSignal, *_OPTIONAL,
)
PYTX_CLASSES: dict[str, type[signal_base.SignalType]] = {cls.get_name(): cls for cls in _CLASSES}


def pytx_type_for(type_name: str) -> tuple[type[signal_base.SignalType], t.Callable[[str], str]] | None:
    """(pytx SignalType, value converter) of a Trustwire type, from the type's own
    ``pytx_name`` and ``pytx_value``; None for a type pytx cannot match."""
    try:
        kind = tw_signals.signal_type(type_name)
    except InvalidValue:
        return None
    cls = PYTX_CLASSES.get(kind.pytx_name) if kind.pytx_name else None
    return None if cls is None else (cls, kind.pytx_value)


# Trustwire type -> (pytx SignalType, value converter), for the built-in types
PYTX_TYPE_FOR: dict[str, tuple[type[signal_base.SignalType], t.Callable[[str], str]]] = {
    k.name: found for k in tw_signals.BUILTIN_TYPES if (found := pytx_type_for(k.name)) is not None
}


def to_pytx(type_name: str, value: str) -> tuple[str, str] | None:
    """(pytx signal type name, pytx signal string) of a Trustwire value, or None for a
    type pytx cannot match."""
    found = pytx_type_for(type_name)
    if found is None:
        return None
    cls, convert = found
    return cls.get_name(), convert(value)
