"""Host suffixes and the Public Suffix List, for ``domain`` and ``url`` matching.

The list is the snapshot the ``publicsuffixlist`` package ships (its ICANN and
private sections); nothing is fetched at run time. A public suffix (``co.uk``,
``github.io``) is never a signal value the exchange admits, and a host's lookup keys
stop at its registrable domain, so no signal can name a whole suffix's hosts.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from publicsuffixlist import PublicSuffixList

__all__ = ["host_suffixes", "is_ip", "is_public_suffix", "registrable_domain"]


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()  # reads the bundled snapshot; no network


def is_ip(host: str) -> bool:
    """True for an IPv4 or IPv6 address literal (brackets allowed)."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def is_public_suffix(name: str) -> bool:
    """True if ``name`` (an A-label domain) is a public suffix itself."""
    return not is_ip(name) and _psl().is_public(name)


@lru_cache(maxsize=65536)
def registrable_domain(name: str) -> str | None:
    """The registrable domain (public suffix plus one label) of ``name``, or None."""
    return None if is_ip(name) else _psl().privatesuffix(name)


def host_suffixes(host: str) -> list[str]:
    """The host and each parent domain of it down to its registrable domain (an IP
    address or a public suffix: only itself)."""
    base = registrable_domain(host)
    if base is None:
        return [host]
    labels = host.split(".")
    keep = len(labels) - base.count(".")
    return [".".join(labels[i:]) for i in range(keep)]
