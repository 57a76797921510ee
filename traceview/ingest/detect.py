"""Export version detection: META_DATA_EXPORT (schema >= 3.13), EXPORT_META_DATA (older), or neither."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """What the export says about itself, plus the tables and columns it really has."""

    nsys_version: str | None
    schema_version: str | None
    metadata_table: str | None
    tables: dict[str, list[str]] = field(default_factory=dict)

    def has(self, table: str, column: str | None = None) -> bool:
        cols = self.tables.get(table)
        if cols is None:
            return False
        return column is None or column in cols


def _key_values(conn: sqlite3.Connection, table: str, cols: list[str]) -> dict[str, str]:
    if "name" not in cols or "value" not in cols:
        return {}
    return {str(k): str(v) for k, v in conn.execute(f'SELECT name, value FROM "{table}"')}


def detect_export(conn: sqlite3.Connection, tables: dict[str, list[str]]) -> ExportInfo:
    """Read the product and schema version from whichever metadata table exists."""
    for meta in ("META_DATA_EXPORT", "EXPORT_META_DATA"):
        if meta in tables:
            kv = _key_values(conn, meta, tables[meta])
            return ExportInfo(
                nsys_version=kv.get("EXPORT_PRODUCT_VERSION"),
                schema_version=kv.get("EXPORT_SCHEMA_VERSION"),
                metadata_table=meta,
                tables=tables,
            )
    return ExportInfo(nsys_version=None, schema_version=None, metadata_table=None, tables=tables)


def looks_like_nsys_export(tables: dict[str, list[str]]) -> bool:
    """True when the file has the tables every nsys export has (StringIds or a metadata/target table)."""
    markers = {"StringIds", "META_DATA_EXPORT", "EXPORT_META_DATA", "TARGET_INFO_SESSION_START_TIME"}
    activity = any(t.startswith(("CUPTI_ACTIVITY_KIND_", "NVTX_EVENTS", "TARGET_INFO_")) for t in tables)
    return bool(markers & set(tables)) and activity
