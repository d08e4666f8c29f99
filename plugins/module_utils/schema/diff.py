# -*- coding: utf-8 -*-
# Copyright: (c) 2026, django_ops.oauth_repair contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compare an expected schema with the live one: a pure function, no database.

``diff(expected, actual, integer_width_matters)`` returns :class:`Difference` objects, one per thing that
differs, in a stable order. Both schemas must have been normalised by the same dialect (see
``normalize_type`` / ``normalize_declared_type``). Indexes and unique constraints are compared by what they
cover (columns, unique, partial), not by name: a different name is its own, harmless, difference.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional

from ansible_collections.django_ops.oauth_repair.plugins.module_utils.schema.model import INTEGER_SIZES, base_type

#: the kinds of difference, in report order
KINDS = ("missing_table", "missing_column", "column_type", "nullable", "missing_auto", "primary_key",
         "unknown_column", "missing_unique", "missing_index", "missing_fk", "fk_target", "extra_index",
         "index_name", "fk_name")


@dataclass
class Difference:
    kind: str
    table: str
    column: Optional[str] = None
    expected: Optional[object] = None
    actual: Optional[object] = None
    details: Dict = field(default_factory=dict)

    @property
    def object(self):
        return "%s.%s" % (self.table, self.column) if self.column else self.table

    def to_dict(self):
        return asdict(self)


def _length(type_):
    m = re.match(r"^(?:var)?char\((\d+)\)$", type_ or "")
    return int(m.group(1)) if m else None


def compare_types(expected, actual, integer_width_matters=True):
    """How the live column type ``actual`` stands to the model's ``expected``: ``same``, ``wider`` (holds every
    value the model can write, e.g. varchar(300) for varchar(255), text for varchar, bigint for int),
    ``narrower`` (some values the model writes do not fit: int for bigint, varchar(40) for varchar(255)) or
    ``different`` (another kind of type)."""
    if expected == actual:
        return "same"
    eb, ab = base_type(expected), base_type(actual)
    e_unsigned, a_unsigned = expected.endswith(" unsigned"), actual.endswith(" unsigned")
    if eb in INTEGER_SIZES and ab in INTEGER_SIZES:
        if not integer_width_matters:
            return "same"
        if e_unsigned != a_unsigned:
            return "different"
        return "wider" if INTEGER_SIZES[ab] > INTEGER_SIZES[eb] else "narrower"
    el, al = _length(expected), _length(actual)
    if el is not None and (al is not None or ab == "text"):
        if ab == "text":
            return "wider"
        if eb == ab or (eb == "varchar" and ab == "char") or (eb == "char" and ab == "varchar"):
            return "wider" if al > el else "narrower"
    if eb == "text" and al is not None:
        return "narrower"
    return "different"


def _index_key(index):
    return (tuple(index.columns), bool(index.unique or index.primary), bool(index.partial))


def diff(expected, actual, integer_width_matters=True):
    """Differences between ``expected`` and ``actual`` (both :class:`~.model.Schema`), for the tables of
    ``expected``; tables only in ``actual`` are not compared."""
    out = []
    for name in sorted(expected.tables):
        want = expected.tables[name]
        have = actual.table(name)
        if have is None:
            out.append(Difference("missing_table", name))
            continue
        out.extend(_columns(want, have, integer_width_matters))
        out.extend(_indexes(want, have))
        out.extend(_foreign_keys(want, have))
    order = dict((k, i) for i, k in enumerate(KINDS))
    out.sort(key=lambda d: (order[d.kind], d.table, d.column or "", str(d.expected)))
    return out


def _columns(want, have, integer_width_matters):
    out = []
    for col in want.columns:
        live = have.column(col.name)
        if live is None:
            out.append(Difference("missing_column", want.name, col.name, expected=col.type))
            continue
        relation = compare_types(col.type, live.type, integer_width_matters)
        if relation != "same":
            out.append(Difference("column_type", want.name, col.name, expected=col.type, actual=live.type,
                                  details=dict(relation=relation, raw_type=live.raw_type,
                                               declared=col.raw_type)))
        if col.nullable != live.nullable:
            out.append(Difference("nullable", want.name, col.name, expected=col.nullable, actual=live.nullable,
                                  details=dict(default=live.default)))
        if col.auto_increment and not live.auto_increment:
            out.append(Difference("missing_auto", want.name, col.name))
    if want.primary_key and list(want.primary_key) != list(have.primary_key):
        out.append(Difference("primary_key", want.name, expected=list(want.primary_key),
                              actual=list(have.primary_key)))
    known = set(c.name for c in want.columns)
    for live in have.columns:
        if live.name not in known:
            out.append(Difference("unknown_column", want.name, live.name, actual=live.type,
                                  details=dict(nullable=live.nullable, default=live.default,
                                               auto_increment=live.auto_increment)))
    return out


def _indexes(want, have):
    out = []
    live_valid = [i for i in have.indexes if i.valid]
    matched = set()
    for index in want.indexes:
        if index.primary:
            continue  # compared as the primary key
        key = _index_key(index)
        same = [i for i in live_valid if _index_key(i) == key]
        if not same and not index.unique and not index.partial:
            # any index that starts with these columns serves them (a unique one, or a longer one)
            same = [i for i in live_valid if tuple(i.columns[:len(index.columns)]) == tuple(index.columns)
                    and not i.partial]
        if not same:
            details = dict(columns=list(index.columns), partial=index.partial)
            invalid = [i.name for i in have.indexes if not i.valid and _index_key(i) == key]
            if invalid:
                details["invalid"] = invalid
                matched.update(invalid)
            out.append(Difference("missing_unique" if index.unique else "missing_index", want.name,
                                  ",".join(index.columns), expected=index.name, details=details))
            continue
        matched.update(i.name for i in same)
        if index.name and index.name not in [i.name for i in same]:
            out.append(Difference("index_name", want.name, ",".join(index.columns), expected=index.name,
                                  actual=same[0].name, details=dict(columns=list(index.columns))))
    wanted = set(_index_key(i) for i in want.indexes)
    for index in have.indexes:
        if index.primary or index.name in matched or (index.valid and _index_key(index) in wanted):
            continue
        out.append(Difference("extra_index", have.name, ",".join(index.columns), actual=index.name,
                              details=dict(columns=list(index.columns), unique=index.unique, valid=index.valid)))
    return out


def _foreign_keys(want, have):
    out = []
    for fk in want.foreign_keys:
        live = [f for f in have.foreign_keys if f.columns == fk.columns]
        target = [f for f in live if f.ref_table == fk.ref_table and f.ref_columns == fk.ref_columns]
        column = ",".join(fk.columns)
        if not live:
            out.append(Difference("missing_fk", want.name, column, expected="%s.%s" % (
                fk.ref_table, ",".join(fk.ref_columns)), details=dict(name=fk.name, ref_table=fk.ref_table,
                                                                      ref_columns=list(fk.ref_columns))))
        elif not target:
            out.append(Difference("fk_target", want.name, column,
                                  expected="%s.%s" % (fk.ref_table, ",".join(fk.ref_columns)),
                                  actual=["%s.%s" % (f.ref_table, ",".join(f.ref_columns)) for f in live],
                                  details=dict(name=fk.name, ref_table=fk.ref_table, ref_columns=list(fk.ref_columns),
                                               live_names=[f.name for f in live])))
        elif fk.name and fk.name not in [f.name for f in target]:
            out.append(Difference("fk_name", want.name, column, expected=fk.name, actual=target[0].name))
    return out
