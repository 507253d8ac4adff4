"""The steps value rule 2 adds to the ``url`` canonical form (PROTOCOL.md §5.3.2),
after the Safe Browsing canonicalization rules: no userinfo, and a host that ends
in a number is an IPv4 address written as four decimal numbers."""

from __future__ import annotations

import re

from exchange.core.errors import InvalidValue

__all__ = ["ipv4_host", "rule2_step"]

_DECIMAL = re.compile(r"[0-9]+\Z")
_HEX = re.compile(r"0[xX][0-9a-fA-F]*\Z")


def _ends_in_number(host: str) -> bool:
    last = host.rsplit(".", 1)[-1]
    return bool(_DECIMAL.match(last) or _HEX.match(last))


def _part(text: str) -> int:
    if _HEX.match(text):
        return int(text[2:] or "0", 16)
    if len(text) > 1 and text.startswith("0"):
        if not re.fullmatch(r"[0-7]+", text):
            raise InvalidValue("url host ends in a number but is not an IPv4 address")
        return int(text, 8)
    if not _DECIMAL.match(text):
        raise InvalidValue("url host ends in a number but is not an IPv4 address")
    return int(text)


def ipv4_host(host: str) -> str | None:
    """Dotted decimal for a host that ends in a number (decimal, 0x-hex or 0-octal
    parts, 1..4 of them, the last filling the remaining bytes); None for any other host;
    InvalidValue for a host that ends in a number and is no IPv4 address."""
    if not host or not _ends_in_number(host):
        return None
    parts = host.split(".")
    if len(parts) > 4 or "" in parts:
        raise InvalidValue("url host ends in a number but is not an IPv4 address")
    numbers = [_part(p) for p in parts]
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        raise InvalidValue("url host is an IPv4 address out of range")
    address = last
    for i, n in enumerate(head):
        address += n << (8 * (3 - i))
    return ".".join(str((address >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def rule2_step(url: str) -> str:
    """Drop the userinfo and rewrite a numeric host, on a rule-1 canonical URL."""
    scheme, _, rest = url.partition("://")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    hostport = authority.rpartition("@")[2]
    if not hostport.startswith("["):
        host, colon, port = hostport.partition(":")
        hostport = (ipv4_host(host) or host) + colon + port
    return f"{scheme}://{hostport}{tail}"
