# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Engine-neutral description of what the live catalog holds.

Dialects fill these structures from their system catalogs; everything above
them (findings, plans) reads only these structures.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import List, Optional

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
        d = asdict(self)
        return d


def base_type(normalised):
    """``varchar(255)`` -> ``varchar``; ``int unsigned`` -> ``int``."""
    return re.split(r"[ (]", normalised, maxsplit=1)[0]


def same_integer_width(a, b):
    """True when both columns are integers of the same size and signedness."""
    return a.type == b.type
