# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one picture of a schema: tables, columns, indexes and foreign keys.

Dialects fill these structures from their system catalogs (the live schema);
the truth probe fills them from the site's own Django models (the expected
schema); :mod:`.diff` compares two of them. Everything above reads only these
structures. A :class:`Schema` round-trips through JSON (``to_dict`` /
``from_dict``) and has a stable text form for diff mode (``text``).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

INTEGER_SIZES = {"smallint": 2, "mediumint": 3, "int": 4, "bigint": 8}


@dataclass
class Column:
    name: str
    type: str                 # normalised: int, bigint, varchar(255), text, uuid, datetime, bool, ...
    raw_type: str             # as the engine spells it
    nullable: bool
    default: Optional[str] = None
    auto_increment: bool = False
    charset: Optional[str] = None

    @property
    def base_type(self):
        return base_type(self.type)

    @property
    def integer_size(self):
        return INTEGER_SIZES.get(self.base_type)


@dataclass
class ForeignKey:
    name: Optional[str]
    table: str
    columns: List[str]
    ref_table: str
    ref_columns: List[str]
    on_delete: str = "NO ACTION"
    on_update: str = "NO ACTION"
    deferrable: bool = False
    valid: bool = True         # False for a PostgreSQL foreign key added NOT VALID and not yet validated


@dataclass
class Index:
    name: str
    table: str
    columns: List[str]
    unique: bool = False
    primary: bool = False
    partial: bool = False
    where: Optional[str] = None
    constraint: bool = False   # a UNIQUE/PRIMARY KEY constraint rather than a plain index
    valid: bool = True         # False for a PostgreSQL index left INVALID by a failed CONCURRENTLY build


@dataclass
class Table:
    name: str
    columns: List[Column] = field(default_factory=list)
    primary_key: List[str] = field(default_factory=list)
    foreign_keys: List[ForeignKey] = field(default_factory=list)
    indexes: List[Index] = field(default_factory=list)
    rows: Optional[int] = None
    rows_exact: bool = True

    def column(self, name):
        for c in self.columns:
            if c.name == name:
                return c
        return None

    def has_column(self, name):
        return self.column(name) is not None

    def fk_on(self, column):
        """The foreign keys whose (single) column is ``column``."""
        return [fk for fk in self.foreign_keys if fk.columns == [column]]

    def unique_on(self, columns, include_partial=False):
        """Unique indexes/constraints on exactly ``columns`` (any order)."""
        want = sorted(columns)
        return [i for i in self.indexes
                if (i.unique or i.primary) and sorted(i.columns) == want and i.valid
                and (include_partial or not i.partial)]

    def index_on(self, columns):
        """Any index whose leading columns are ``columns``."""
        n = len(columns)
        return [i for i in self.indexes if i.columns[:n] == list(columns)]

    def to_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        data = dict(data)
        data["columns"] = [Column(**c) for c in data.get("columns", [])]
        data["foreign_keys"] = [ForeignKey(**f) for f in data.get("foreign_keys", [])]
        data["indexes"] = [Index(**i) for i in data.get("indexes", [])]
        return cls(**data)

    def text(self):
        """Stable lines describing the table (diff mode)."""
        lines = ["%s:" % self.name]
        for c in self.columns:
            lines.append("  %s %s%s%s" % (
                c.name, c.type, "" if c.nullable else " NOT NULL", " AUTO" if c.auto_increment else ""))
        for i in sorted(self.indexes, key=lambda x: (x.name or "", x.columns)):
            kind = "PRIMARY KEY" if i.primary else ("UNIQUE" if i.unique else "INDEX")
            lines.append("  %s %s (%s)%s%s" % (
                kind, i.name, ", ".join(i.columns), " WHERE %s" % i.where if i.partial else "",
                "" if i.valid else " INVALID"))
        for fk in sorted(self.foreign_keys, key=lambda x: (x.name or "", x.columns)):
            lines.append("  FOREIGN KEY %s (%s) -> %s (%s) ON DELETE %s" % (
                fk.name or "-", ", ".join(fk.columns), fk.ref_table, ", ".join(fk.ref_columns), fk.on_delete))
        return lines


@dataclass
class Schema:
    """A set of tables on one engine: the live catalog, a snapshot, or what the site's models expect.

    ``source`` says where it came from (``catalog``, ``django_models``, ``django_migrate``, ``mssql_snapshot``);
    ``details`` carries source-specific facts (for an expected schema: the Django version, the models read).
    """
    engine: str
    vendor: str
    server_version: str
    tables: Dict[str, Table] = field(default_factory=dict)
    source: str = "catalog"
    details: Dict = field(default_factory=dict)

    def table(self, name):
        return self.tables.get(name)

    def references_to(self, name):
        """Foreign keys of any table of this schema that reference ``name``."""
        return [fk for t in self.tables.values() for fk in t.foreign_keys if fk.ref_table == name]

    def to_dict(self):
        return dict(engine=self.engine, vendor=self.vendor, server_version=self.server_version,
                    source=self.source, details=self.details,
                    tables=dict((n, t.to_dict()) for n, t in sorted(self.tables.items())))

    @classmethod
    def from_dict(cls, data):
        return cls(engine=data["engine"], vendor=data["vendor"], server_version=data.get("server_version") or "",
                   source=data.get("source") or "catalog", details=dict(data.get("details") or {}),
                   tables=dict((n, Table.from_dict(t)) for n, t in (data.get("tables") or {}).items()))

    def text(self, names=None):
        """A readable, stable text of the named tables (all when ``names`` is None), for diff mode."""
        lines = []
        for name in sorted(self.tables if names is None else names):
            t = self.tables.get(name)
            lines.extend(t.text() if t is not None else ["%s: (absent)" % name])
        return "\n".join(lines) + "\n"


def base_type(normalised):
    """``varchar(255)`` -> ``varchar``; ``int unsigned`` -> ``int``."""
    return re.split(r"[ (]", normalised, maxsplit=1)[0]


def same_integer_width(a, b):
    """True when both columns are integers of the same size and signedness."""
    return a.type == b.type
