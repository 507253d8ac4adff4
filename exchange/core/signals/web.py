"""Web indicators: ``url`` and ``domain``, one family because they match each other.

A ``domain`` signal matches content for that domain and every sub-domain of it
(host-suffix matching, which stops at the registrable domain: ``suffixes``); ``url``
content matches URL signals exactly and domain signals for its host. Value rule 2
(``url_rule2``) drops a URL's userinfo and writes a numeric host as dotted decimal.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata

import idna
from url_normalize import url_normalize

from exchange.core.errors import BroadValue, InvalidValue
from exchange.core.signals.base import CURRENT_RULE, LEGACY_RULE, SignalType
from exchange.core.signals.suffixes import host_suffixes, is_public_suffix
from exchange.core.signals.url_rule2 import rule2_step

__all__ = ["Domain", "Url", "host_suffixes"]


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
    bad_examples = ("javascript:alert(1)", "ftp://example.com/x", "https://", "not a url at all", "http://256.1.1.1/")
    rule2_examples = (
        ("http://user:pass@Example.com/", "http://example.com/"),
        ("http://3232235777/", "http://192.168.1.1/"),
        ("http://0xC0.0250.1.1/x", "http://192.168.1.1/x"),
        ("http://user@0x7f.1:8080/", "http://127.0.0.1:8080/"),
    )

    def normalize(self, raw: str) -> str:
        return self.normalize_under(raw, CURRENT_RULE)

    def normalize_under(self, raw: str, rule: int) -> str:
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
            if rule > LEGACY_RULE:
                again = rule2_step(again)
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

    pytx_name = "url"

    # The plainest canonical URLs (a lowercase DNS host of letter-digit-hyphen labels,
    # no "--", port, userinfo, query or fragment; a path of unreserved characters with
    # no dot segments) are their own normal form: they are checked by this pattern
    # instead of by url_normalize, which costs more than a signature check. Anything
    # else takes the full check. tests/unit/test_signals.py proves that every value the
    # pattern passes is one normalize() leaves unchanged.
    _SEGMENT = r"(?!\.+(?:/|\Z))[A-Za-z0-9._~-]+"
    _PLAIN = re.compile(
        r"https?://(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}"
        rf"/(?:{_SEGMENT}(?:/{_SEGMENT})*)?\Z"
    )

    def check(self, value: str, rule: int = CURRENT_RULE) -> None:
        # a plain URL has no userinfo and a letter TLD, so it is canonical under every rule
        if len(value) <= 1024 and self._PLAIN.match(value):
            host = value.partition("://")[2].partition("/")[0]
            if len(host) <= 253 and "--" not in host:
                if rule >= CURRENT_RULE:
                    self.restrict(value)
                return
        super().check(value, rule)

    def lookups(self, value: str) -> list[tuple[str, str]]:
        authority = value.partition("://")[2].split("/", 1)[0].split("?", 1)[0]
        host = authority.rpartition("@")[2].split(":", 1)[0].strip("[]")
        keys = [(self.name, value)]
        if host:
            keys += [(Domain.name, suffix) for suffix in host_suffixes(host)]
        return keys

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
    pytx_name = "domain"
    examples = (
        ("Example.COM.", "example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
    )
    bad_examples = ("exa mple.com", "-bad.example", "a..b", "", "x" * 64 + ".com")
    # admitted by no exchange (a public suffix alone), though valid under every rule
    broad_examples = ("co.uk", "com", "github.io")
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

    def admit(self, value: str) -> None:
        if is_public_suffix(value):
            raise BroadValue(f"domain {value} is a public suffix: it would match every domain under it")

    def quality_flag(self, value: str) -> str | None:
        return "public-suffix" if is_public_suffix(value) else None

    def lookups(self, value: str) -> list[tuple[str, str]]:
        return [(self.name, suffix) for suffix in host_suffixes(value)] if value else []
