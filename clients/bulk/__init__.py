"""Bulk import (CSV, JSON Lines, STIX bundles) and export of a member's bank."""

from clients.bulk.exporter import EXPORT_FORMATS, export_bank
from clients.bulk.importer import DEFAULT_BATCH, ImportReport, Journal, check_rows, publish_rows
from clients.bulk.readers import FORMATS, CsvMapping, Problem, Row, derived_id, read_rows

__all__ = [
    "DEFAULT_BATCH", "EXPORT_FORMATS", "FORMATS", "CsvMapping", "ImportReport", "Journal", "Problem", "Row",
    "check_rows", "derived_id", "export_bank", "publish_rows", "read_rows",
]
