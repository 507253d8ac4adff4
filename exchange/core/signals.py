"""Signal types: a small class per type with a stable name, a normalizer and a matcher.

Values are normalized by the publisher *before* signing; the exchange and every
consumer call :meth:`SignalType.check` and reject a value whose normalized form
differs, instead of rewriting signed bytes. The set is open: :func:`signal_type`
returns :class:`OpaqueType` for a well-formed name nobody registered, so unknown
types are carried and verified but never matched.

Each type lists ``examples`` (raw, normalized) and ``bad_examples``; the unit tests
and the seeds reuse them.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from enum import StrEnum
from typing import ClassVar

import idna
from url_normalize import url_normalize

from exchange.core.errors import InvalidValue, NonNormalizedValue

__all__ = [
    "Matcher",
    "SignalType",
    "BUILTIN_TYPES",
    "OpaqueType",
    "register",
    "signal_type",
    "normalize",
]

MAX_VALUE_LENGTH = 4096
_HEX = re.compile(r"[0-9a-f]*")
_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")


class Matcher(StrEnum):
    """How a member's bank matches content against a type's values."""

    EXACT = "exact"
    HAMMING = "hamming"  # 256-bit perceptual hashes
    SUBSTRING = "substring"  # text keywords and phrases
    NONE = "none"  # unknown types: carried, verified, never matched


class SignalType:
    """Base class: subclasses set ``name`` and implement :meth:`normalize`."""

    name: ClassVar[str]
    matcher: ClassVar[Matcher] = Matcher.EXACT
    examples: ClassVar[tuple[tuple[str, str], ...]] = ()
    bad_examples: ClassVar[tuple[str, ...]] = ()

    def normalize(self, raw: str) -> str:
        """Return the canonical form of ``raw`` or raise InvalidValue."""
        raise NotImplementedError

    def check(self, value: str) -> None:
        """Raise unless ``value`` is already in canonical form."""
        if self.normalize(value) != value:
            raise NonNormalizedValue(
                f"{self.name} value is not in canonical form; normalize it before signing"
            )


class _HexDigest(SignalType):
    digits: ClassVar[int]

    def normalize(self, raw: str) -> str:
        value = raw.strip().lower()
        if len(value) != self.digits or not _HEX.fullmatch(value):
            raise InvalidValue(f"{self.name} is {self.digits} hex characters")
        return value


class Md5(_HexDigest):
    name = "md5"
    digits = 32
    examples = (("D41D8CD98F00B204E9800998ECF8427E", "d41d8cd98f00b204e9800998ecf8427e"),)
    bad_examples = ("d41d8cd98f00b204e9800998ecf8427", "zz1d8cd98f00b204e9800998ecf8427e", "")


class Sha1(_HexDigest):
    name = "sha1"
    digits = 40
    examples = ((" DA39A3EE5E6B4B0D3255BFEF95601890AFD80709 ", "da39a3ee5e6b4b0d3255bfef95601890afd80709"),)
    bad_examples = ("da39a3ee5e6b4b0d3255bfef95601890afd8070", "da39a3ee5e6b4b0d3255bfef95601890afd8070g")


class Sha256(_HexDigest):
    name = "sha256"
    digits = 64
    examples = (
        (
            "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ),
    )
    bad_examples = ("e3b0c442", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b85x")


class VideoMd5(Md5):
    name = "video_md5"


class Pdq(_HexDigest):
    """256-bit PDQ perceptual hash, matched by Hamming distance (default 31)."""

    name = "pdq"
    digits = 64
    matcher = Matcher.HAMMING
    examples = (
        (
            "F8F8F0CEE0F4A84F06370A22038F63F0B36E2ED596621E1D33E6B39C4E9C9B22",
            "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22",
        ),
    )
    bad_examples = ("f8f8f0cee0f4a84f", "not-a-hash")


class Url(SignalType):
    """An http(s) URL in canonical form: lowercase scheme and host, IDNA host,
    default port dropped, dot segments resolved, percent-encoding normalized,
    fragment removed."""

    name = "url"
    max_length = 2048
    examples = (
        ("HTTP://Example.COM:80/a/../b/./c?q=1#frag", "http://example.com/b/c?q=1"),
        ("https://EXAMPLE.com", "https://example.com/"),
        ("https://例え.jp/パス", "https://xn--r8jz45g.jp/%E3%83%91%E3%82%B9"),
    )
    bad_examples = ("javascript:alert(1)", "ftp://example.com/x", "https://", "not a url at all")

    def normalize(self, raw: str) -> str:
        text = raw.strip()
        if not text or len(text) > self.max_length or any(unicodedata.category(c) == "Cc" for c in text):
            raise InvalidValue("url must be 1..2048 printable characters")
        scheme, sep, _ = text.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            raise InvalidValue("url must be absolute, with scheme http or https")
        value = text.split("#", 1)[0]
        # url_normalize is not always idempotent (e.g. an IDNA-mapped trailing "。"
        # becomes a "." it strips only on the next pass): iterate to its fixed point.
        for _ in range(4):
            try:
                again = url_normalize(value)
            except Exception as exc:  # the library raises several types on bad input
                raise InvalidValue("url cannot be normalized") from exc
            if not again:
                raise InvalidValue("url cannot be normalized")
            if again == value:
                break
            value = again
        else:
            raise InvalidValue("url has no stable canonical form")
        if len(value) > self.max_length:
            raise InvalidValue("url must be at most 2048 characters once normalized")
        if not value.isascii():
            raise InvalidValue("url must be ASCII once normalized")
        authority = re.split(r"[/?]", value.partition("://")[2], maxsplit=1)[0]
        host, port = self._host_port(authority.rpartition("@")[2])
        if not host or " " in value:
            raise InvalidValue("url must name a host")
        if port and (not port.isdigit() or port.startswith("0") or int(port) > 65535):
            raise InvalidValue("url port must be 1..65535")
        return value

    _HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\Z")

    @classmethod
    def _host_port(cls, hostport: str) -> tuple[str, str]:
        """Split and check the host: DNS labels, IPv4 or a bracketed IPv6 address."""
        if hostport.startswith("["):
            addr, _, rest = hostport[1:].partition("]")
            try:
                ipaddress.IPv6Address(addr)
            except ValueError as exc:
                raise InvalidValue("url host is not a valid IPv6 address") from exc
            if rest and not rest.startswith(":"):
                raise InvalidValue("url must name a host")
            return addr, rest[1:]
        host, _, port = hostport.partition(":")
        if host and (len(host) > 253 or not all(cls._HOST_LABEL.match(label) for label in host.split("."))):
            raise InvalidValue("url host must be a DNS name or an IP address")
        return host, port


class Domain(SignalType):
    """A DNS name: lowercase, IDNA (punycode) A-labels, no trailing dot."""

    name = "domain"
    examples = (
        ("Example.COM.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
    )
    bad_examples = ("exa mple.com", "-bad.example", "a..b", "", "x" * 64 + ".com")
    _LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)\Z")

    def normalize(self, raw: str) -> str:
        text = raw.strip().rstrip(".")
        if not text:
            raise InvalidValue("domain is empty")
        try:
            value = idna.encode(text, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise InvalidValue("domain is not a valid IDNA name") from exc
        labels = value.split(".")
        if len(value) > 253 or not all(self._LABEL.match(label) for label in labels):
            raise InvalidValue("domain labels must be 1..63 letters, digits or hyphens")
        return value


class Account(SignalType):
    """An abusive-account indicator: ``platform:kind:identifier``.

    ``kind`` is ``email``, ``phone`` or ``username`` (identifier = lowercase hex
    HMAC-SHA256 under the task-force secret, never the identifier in clear; see
    ``clients.accounts``) or ``id`` (the platform's own opaque account id).
    """

    name = "account"
    hashed_kinds: ClassVar[frozenset[str]] = frozenset({"email", "phone", "username"})
    kinds: ClassVar[frozenset[str]] = hashed_kinds | {"id"}
    examples = (
        ("ExampleChat:ID:1234567", "examplechat:id:1234567"),
        (
            "examplechat:email:" + "AB" * 32,
            "examplechat:email:" + "ab" * 32,
        ),
    )
    bad_examples = (
        "examplechat:email:alice@example.com",
        "examplechat:fax:123",
        "no-separators",
        "examplechat:id:",
        "bad platform:id:1",
    )
    _PLATFORM = re.compile(r"^[a-z0-9][a-z0-9.-]{0,62}\Z")
    _ID = re.compile(r"^[\x21-\x7e]{1,256}\Z")

    def normalize(self, raw: str) -> str:
        parts = raw.strip().split(":", 2)
        if len(parts) != 3:
            raise InvalidValue("account is platform:kind:identifier")
        platform, kind, ident = parts[0].lower(), parts[1].lower(), parts[2]
        if not self._PLATFORM.match(platform):
            raise InvalidValue("account platform must be a lowercase name like 'examplechat'")
        if kind not in self.kinds:
            raise InvalidValue("account kind must be one of " + ", ".join(sorted(self.kinds)))
        if kind in self.hashed_kinds:
            ident = ident.lower()
            if len(ident) != 64 or not all(c in "0123456789abcdef" for c in ident):
                raise InvalidValue(f"{kind} identifiers are shared only as HMAC-SHA256 hex, never in clear")
        elif not self._ID.match(ident):
            raise InvalidValue("account id must be 1..256 printable characters without spaces")
        return f"{platform}:{kind}:{ident}"


class Text(SignalType):
    """A keyword or phrase: NFKC, case-folded, inner whitespace collapsed."""

    name = "text"
    matcher = Matcher.SUBSTRING
    max_length = 1024
    examples = (("  Buy  CHEAP\tfollowers ", "buy cheap followers"), ("Straße", "strasse"))
    bad_examples = ("", "   ", "x" * 1025)

    def normalize(self, raw: str) -> str:
        # NFKC again after casefold: casefold can leave a non-NFKC string (e.g. "ß\u0301"
        # -> "ss\u0301"), which would not be a fixed point of this normalizer.
        folded = unicodedata.normalize("NFKC", raw).casefold()
        value = " ".join(unicodedata.normalize("NFKC", folded).split())
        if not value or len(value) > self.max_length:
            raise InvalidValue("text must be 1..1024 characters after normalization")
        return value


class OpaqueType(SignalType):
    """A type this code does not know: carried and verified, never matched."""

    matcher = Matcher.NONE

    def __init__(self, name: str) -> None:
        self.name = name  # type: ignore[misc]

    def normalize(self, raw: str) -> str:
        if not raw or len(raw) > MAX_VALUE_LENGTH:
            raise InvalidValue(f"value must be 1..{MAX_VALUE_LENGTH} characters")
        return raw


BUILTIN_TYPES: tuple[SignalType, ...] = (
    Md5(), Sha1(), Sha256(), Pdq(), VideoMd5(), Url(), Domain(), Account(), Text(),
)
_REGISTRY: dict[str, SignalType] = {t.name: t for t in BUILTIN_TYPES}


def register(kind: SignalType) -> None:
    """Add a signal type (an extension point for member code)."""
    if not _TYPE_NAME.match(kind.name):
        raise InvalidValue("signal type names are lowercase letters, digits and underscores")
    _REGISTRY[kind.name] = kind


def signal_type(name: str) -> SignalType:
    """The registered type for ``name``, or an OpaqueType for an unknown valid name."""
    found = _REGISTRY.get(name)
    if found is not None:
        return found
    if not _TYPE_NAME.match(name):
        raise InvalidValue("signal type names are 1..32 lowercase letters, digits and underscores")
    return OpaqueType(name)


def normalize(type_name: str, raw: str) -> str:
    """Normalize ``raw`` for the named type (what publishers call before signing)."""
    value = signal_type(type_name).normalize(raw)
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidValue(f"value is longer than {MAX_VALUE_LENGTH} characters")
    return value
