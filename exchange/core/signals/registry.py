"""The registry of signal types: a type's name to the plug-in that owns it.

The set is open: :func:`signal_type` returns an :class:`OpaqueType` for a
well-formed name nobody registered, so unknown types are carried and verified but
never matched.
"""

from __future__ import annotations

import re

from exchange.core.errors import InvalidValue
from exchange.core.signals.base import CURRENT_RULE, MAX_VALUE_LENGTH, OpaqueType, SignalType

__all__ = ["admit", "register", "unregister", "registered", "signal_type", "signal_value", "normalize", "TYPE_NAME"]

TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}\Z")
_REGISTRY: dict[str, SignalType] = {}


def register(kind: SignalType) -> None:
    """Add (or replace) a signal type: the extension point for a new type."""
    if not TYPE_NAME.match(kind.name):
        raise InvalidValue("signal type names are lowercase letters, digits and underscores")
    _REGISTRY[kind.name] = kind


def unregister(name: str) -> None:
    """Forget a registered type (its values become opaque again)."""
    _REGISTRY.pop(name, None)


def registered() -> tuple[SignalType, ...]:
    """Every registered type, in registration order."""
    return tuple(_REGISTRY.values())


def signal_type(name: str) -> SignalType:
    """The registered type for ``name``, or an OpaqueType for an unknown valid name."""
    found = _REGISTRY.get(name)
    if found is not None:
        return found
    if not TYPE_NAME.match(name):
        raise InvalidValue("signal type names are 1..32 lowercase letters, digits and underscores")
    return OpaqueType(name)


def normalize(type_name: str, raw: str) -> str:
    """Normalize ``raw`` for the named type (what publishers call before signing)."""
    value = signal_type(type_name).normalize(raw)
    if len(value) > MAX_VALUE_LENGTH:
        raise InvalidValue(f"value is longer than {MAX_VALUE_LENGTH} characters")
    return value


def signal_value(type_name: str, raw: str) -> str:
    """A new signal's value: normalized under the current rule and within its limits
    (what a publisher signs; content lookups use :func:`normalize`)."""
    value = normalize(type_name, raw)
    signal_type(type_name).restrict(value)
    return value


def admit(type_name: str, value: str) -> None:
    """The exchange's check of a new signal's value, whatever rule it names: canonical
    and within limits under the current rule, and allowed by the type's admission
    policy (a public suffix is not a domain signal)."""
    kind = signal_type(type_name)
    kind.check(value, CURRENT_RULE)
    kind.admit(value)
