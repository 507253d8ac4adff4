"""Hand-made protobuf wire bytes for conformance vectors (canonical and not).

The generator needs byte strings no protobuf library emits on purpose: fields out
of order, explicit default values, repeated singular fields, unknown fields and
over-long varints. Varints come from the fuzzing campaign's mutators.
"""

from __future__ import annotations

from reliability.fuzzing import overlong_varint, varint

__all__ = ["varint", "tag", "field_varint", "field_bytes", "field_string", "long_varint"]


def long_varint(value: int, length: int) -> bytes:
    """``value`` as a non-minimal varint of exactly ``length`` bytes."""
    return overlong_varint(value, length - len(varint(value)))


def tag(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def field_varint(number: int, value: int) -> bytes:
    return tag(number, 0) + varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return tag(number, 2) + varint(len(value)) + value


def field_string(number: int, value: str) -> bytes:
    return field_bytes(number, value.encode("utf-8"))
