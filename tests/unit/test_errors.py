"""The one error tree: every error class lives in exchange.core.errors and round-trips."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import clients
import exchange
from exchange.core import errors
from exchange.core.errors import TrustwireError, error_for


def _subclasses(cls: type[TrustwireError]) -> list[type[TrustwireError]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_subclasses(sub))
    return out


def _import_everything() -> None:
    for pkg in (exchange, clients):
        for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
            if ".pb." not in info.name and not info.name.endswith("__main__"):
                importlib.import_module(info.name)


def test_every_error_class_is_defined_in_core_errors() -> None:
    _import_everything()
    outside = [f"{c.__module__}.{c.__qualname__}" for c in _subclasses(TrustwireError) if c.__module__ != errors.__name__]
    assert outside == []


@pytest.mark.parametrize("cls", _subclasses(TrustwireError), ids=lambda c: c.__name__)
def test_error_for_rebuilds_every_class_from_its_reason(cls: type[TrustwireError]) -> None:
    rebuilt = error_for(cls.status, cls.reason, "message")
    assert type(rebuilt) is cls and rebuilt.message == "message"


def test_reasons_are_unique() -> None:
    reasons = [c.reason for c in _subclasses(TrustwireError)]
    assert len(reasons) == len(set(reasons))
