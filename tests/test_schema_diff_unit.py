"""Pure unit tests of the schema picture, the diff and the drift classification (no database)."""

from __future__ import annotations

import json

import pytest

from tests.support.modules import module_utils

model = module_utils("schema.model")
diff_mod = module_utils("schema.diff")
drift = module_utils("diagnose.drift")
probe = module_utils("truth.django_models")
dialects = module_utils("dialects")


def table(name, columns, pk="id", indexes=(), fks=()):
    t = model.Table(name=name, primary_key=[pk])
    for cname, ctype, nullable in columns:
        t.columns.append(model.Column(name=cname, type=ctype, raw_type=ctype, nullable=nullable,
                                      auto_increment=cname == pk))
    t.indexes.append(model.Index(name="%s_pkey" % name, table=name, columns=[pk], unique=True, primary=True))
    for iname, cols, unique in indexes:
        t.indexes.append(model.Index(name=iname, table=name, columns=list(cols), unique=unique))
    for fname, col, ref in fks:
        t.foreign_keys.append(model.ForeignKey(name=fname, table=name, columns=[col], ref_table=ref,
                                               ref_columns=["id"]))
    return t


def schema(*tables, source="catalog"):
    return model.Schema(engine="mysql", vendor="mariadb", server_version="10.11", source=source,
                        tables=dict((t.name, t) for t in tables), details={"django": "5.2"})


def expected_token():
    return table("tok", [("id", "bigint", False), ("user_id", "int", True), ("family", "uuid", True),
                         ("code", "varchar(255)", False)],
                 indexes=[("tok_code_uniq", ["code"], True), ("tok_family_idx", ["family"], False)],
                 fks=[("tok_user_fk", "user_id", "auth_user")])


@pytest.mark.parametrize("expected,actual,relation", [
    ("bigint", "bigint", "same"), ("bigint", "int", "narrower"), ("int", "bigint", "wider"),
    ("varchar(255)", "varchar(40)", "narrower"), ("varchar(40)", "varchar(255)", "wider"),
    ("varchar(255)", "text", "wider"), ("text", "varchar(255)", "narrower"), ("uuid", "char(32)", "different"),
    ("bigint", "int unsigned", "different"), ("datetime", "text", "different"),
])
def test_compare_types(expected, actual, relation):
    assert diff_mod.compare_types(expected, actual) == relation


def test_integer_widths_do_not_matter_on_sqlite():
    assert diff_mod.compare_types("bigint", "int", integer_width_matters=False) == "same"


def test_identical_schemas_have_no_difference():
    assert diff_mod.diff(schema(expected_token()), schema(expected_token())) == []


def test_each_kind_of_difference_is_found():
    live = table("tok", [("id", "int", False), ("user_id", "int", True), ("family", "char(32)", True),
                         ("legacy", "int", False)],
                 indexes=[("tok_family_other", ["family"], False)])
    found = diff_mod.diff(schema(expected_token()), schema(live, table("auth_user", [("id", "int", False)])))
    kinds = [(d.kind, d.object) for d in found]
    assert kinds == [
        ("missing_column", "tok.code"),
        ("column_type", "tok.family"),
        ("column_type", "tok.id"),
        ("unknown_column", "tok.legacy"),
        ("missing_unique", "tok.code"),
        ("missing_fk", "tok.user_id"),
        ("index_name", "tok.family"),
    ]


def test_a_missing_table_is_one_difference():
    found = diff_mod.diff(schema(expected_token()), schema())
    assert [(d.kind, d.table) for d in found] == [("missing_table", "tok")]


def test_severity_follows_what_breaks():
    live = table("tok", [("id", "int", False), ("user_id", "int", True), ("family", "char(32)", True),
                         ("code", "varchar(40)", False), ("legacy", "int", False)],
                 indexes=[("tok_code_uniq", ["code"], True), ("tok_family_idx", ["family"], False),
                          ("tok_old_idx", ["user_id"], False)],
                 fks=[("tok_user_fk", "user_id", "other")])
    expected = schema(expected_token(), source="django_models")
    findings = drift.drift_findings(diff_mod.diff(expected, schema(live)), expected)
    out = dict((f[0] + ":" + f[3][0], f[1]) for f in findings)
    assert out["schema_drift_uuid_char32:tok.family"] == "fatal"
    assert out["schema_drift_int_width:tok.id"] == "warning"
    assert out["schema_drift_column_type:tok.code"] == "fatal"
    assert out["schema_drift_unknown_column:tok.legacy"] == "fatal"
    assert out["schema_drift_fk_target:tok.user_id"] == "error"
    assert out["schema_drift_extra_index:tok.user_id"] == "info"


def test_the_allowlist_makes_a_finding_harmless():
    live = table("tok", [("id", "int", False), ("user_id", "int", True), ("family", "uuid", True),
                         ("code", "varchar(255)", False)],
                 indexes=[("tok_code_uniq", ["code"], True), ("tok_family_idx", ["family"], False)],
                 fks=[("tok_user_fk", "user_id", "auth_user")])
    expected = schema(expected_token())
    found = drift.drift_findings(diff_mod.diff(expected, schema(live)), expected,
                                 allow=["schema_drift_int_width:tok.id"])
    assert [(f[0], f[1], f[4]["allowed"], f[4]["severity_without_allowlist"]) for f in found] == [
        ("schema_drift_int_width", "info", True, "warning")]


def test_schema_json_round_trip_and_text():
    s = schema(expected_token())
    again = model.Schema.from_dict(json.loads(json.dumps(s.to_dict())))
    assert again == s
    assert again.text() == s.text()
    assert "  FOREIGN KEY tok_user_fk (user_id) -> auth_user (id) ON DELETE NO ACTION" in s.text().splitlines()


def test_probe_document_becomes_a_normalised_schema():
    doc = dict(format=probe.PROBE_FORMAT, format_version=probe.PROBE_FORMAT_VERSION, vendor="mysql",
               server_version="10.11.6-MariaDB", django="5.2", models={"app.Tok": "tok"}, tables={"tok": dict(
                   name="tok", model="app.Tok",
                   columns=[dict(name="id", db_type="bigint AUTO_INCREMENT", null=False, primary_key=True,
                                 unique=True, auto=True, field="id", model="app.Tok"),
                            dict(name="family", db_type="uuid", null=True, primary_key=False, unique=False,
                                 auto=False, field="family", model="app.Tok"),
                            dict(name="data", db_type="json", null=False, primary_key=False, unique=False,
                                 auto=False, field="data", model="app.Tok")],
                   indexes=[dict(name=None, columns=["id"], unique=True, primary=True)], foreign_keys=[])})
    s = probe.schema_from_probe(doc, dialects.get_dialect("mysql", "10.11.6-MariaDB"))
    assert [(c.name, c.type, c.nullable, c.auto_increment) for c in s.table("tok").columns] == [
        ("id", "bigint", False, True), ("family", "uuid", True, False), ("data", "text", False, False)]
    assert s.details["fields"]["tok.family"] == {"model": "app.Tok", "field": "family", "has_db_default": False,
                                                 "has_scalar_default": False, "scalar_default": None,
                                                 "internal_type": None}
    with pytest.raises(Exception, match="postgresql"):
        probe.schema_from_probe(doc, dialects.get_dialect("postgresql", "15"))
