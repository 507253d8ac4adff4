"""STIX 2.1 for Trustwire: the mapping of signals, retractions and opinions
(:mod:`clients.stix.objects`), the per-type table (:mod:`clients.stix.types`) and
reading bundles back into signal rows (:mod:`clients.stix.reader`)."""

from clients.stix.objects import Checkpoint, bundle, indicator, opinion_object, static_objects, stix_id
from clients.stix.types import STIX_TYPES, pattern_for, type_from_pattern

__all__ = [
    "STIX_TYPES",
    "Checkpoint",
    "bundle",
    "indicator",
    "opinion_object",
    "pattern_for",
    "static_objects",
    "stix_id",
    "type_from_pattern",
]
