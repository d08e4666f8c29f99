"""SQL Server as plans (issue 4, part 3; field report 002).

No SQL Server runs here, so these tests cannot be the usual "run it on a real server":
they feed ``oauth_info`` / ``oauth_repair`` (run in-process as Ansible would) catalog
snapshots shaped like the output of files/mssql_catalog_snapshot.sql
(tests/data/mssql_snapshot_*.json, built by tests/support/mssql_snapshots.py), and they
check every T-SQL statement of the plan by parsing it with a real T-SQL parser
(sqlglot's ``tsql`` dialect) and asserting on the syntax tree: names, filters, types,
order. What they cannot check is how a live SQL Server executes the plan; the docs and
the module output say so.

Expected Django names are computed here with Django's own ``names_digest``, not with the
collection's code.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pytest
import sqlglot
from django.db.backends.utils import names_digest
from sqlglot import exp

from tests.support import mssql_snapshots
from tests.support.modules import module_utils, run_module

ROOT = Path(__file__).resolve().parent.parent
AT, RT, APP = "oauth2_provider_accesstoken", "oauth2_provider_refreshtoken", "oauth2_provider_application"
GRANT, IDT = "oauth2_provider_grant", "oauth2_provider_idtoken"
DB = {"seed002": "proposal", "intwidth": "site", "healthy": "site"}
NOT_RUN = "has not been run against a live SQL Server"

# sqlglot 30 parses these T-SQL forms only as an opaque Command; their text is checked instead.
OPAQUE = ("CREATE STATISTICS ", "DROP STATISTICS ")

logging.getLogger("sqlglot").setLevel(logging.ERROR)


def django_name(table, columns, suffix=""):
    return "%s_%s_%s%s" % (table, "_".join(columns), names_digest(table, *columns, length=8), suffix)


def load(kind):
    return json.loads(mssql_snapshots.path(kind).read_text())


def params(kind, path=None, **extra):
    p = {"engine": "mssql", "db": DB.get(kind, "site"), "catalog_snapshot": str(path or mssql_snapshots.path(kind))}
    p.update(extra)
    return p


def write(tmp_path, doc, name="snapshot.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return path


def info(kind, path=None, **extra):
    result = run_module("oauth_info", params(kind, path, **extra))
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["executed_queries"] == []
    again = run_module("oauth_info", params(kind, path, **extra), check_mode=True)
    assert again["findings"] == result["findings"]
    return result


def repair(kind, path=None, check_mode=False, diff=False, **extra):
    result = run_module("oauth_repair", params(kind, path, **extra), check_mode=check_mode, diff=diff)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["executed_queries"] == []
    assert NOT_RUN in json.dumps(result.get("warnings")), result.get("warnings")
    assert NOT_RUN in result["tsql_script"] and NOT_RUN in result["report"]["note"]
    return result


def parse(statement):
    """The statement's syntax tree; an unparsed fallback (Command) is a failure except for OPAQUE forms."""
    tree = sqlglot.parse_one(statement, read="tsql")
    if statement.startswith(OPAQUE):
        assert isinstance(tree, exp.Command), statement
    else:
        assert not isinstance(tree, exp.Command), "sqlglot could not parse: %s" % statement
    return tree


def statements(result):
    return [s for step in result["plan"] for s in step["sql"]]


def step(result, key):
    matches = [s for s in result["plan"] if s["key"] == key]
    assert len(matches) == 1, [s["key"] for s in result["plan"]]
    return matches[0]


def table_of(tree):
    table = tree.this.args["table"] if isinstance(tree, exp.Create) else (
        tree.this if isinstance(tree, exp.Alter) else tree.args["cluster"].this)
    return table.args["db"].name, table.name


def created_index(tree):
    """(name, schema, table, [(column, desc)], unique, where tree, include) of a CREATE INDEX."""
    assert isinstance(tree, exp.Create) and tree.args["kind"] == "INDEX"
    index = tree.this
    p = index.args["params"]
    cols = [(o.this.name, bool(o.args.get("desc"))) for o in p.args["columns"]]
    schema, table = table_of(tree)
    return dict(name=index.this.name, schema=schema, table=table, columns=cols, unique=bool(tree.args["unique"]),
                where=p.args.get("where"), include=[i.name for i in p.args.get("include") or []],
                clustered=bool(tree.args.get("clustered")))


def not_null_columns(where):
    """The columns of a WHERE made only of ``col IS NOT NULL`` terms joined by AND."""
    assert isinstance(where, exp.Where)
    terms, node = [], where.this
    while isinstance(node, exp.And):
        terms.append(node.expression)
        node = node.this
    terms.append(node)
    out = []
    for term in reversed(terms):
        assert isinstance(term, exp.Not) and isinstance(term.this, exp.Is), term.sql("tsql")
        assert isinstance(term.this.expression, exp.Null)
        out.append(term.this.this.name)
    return out


def alter_action(tree):
    assert isinstance(tree, exp.Alter) and tree.args["kind"] == "TABLE"
    (action,) = tree.args["actions"]
    return action


def classify(statement):
    """(kind, details) of one plan statement, from its syntax tree."""
    tree = parse(statement)
    if isinstance(tree, exp.Command):
        return ("drop_statistics" if statement.startswith("DROP") else "create_statistics"), statement
    if isinstance(tree, exp.Set):
        (item,) = tree.expressions
        assert isinstance(item.this, exp.EQ)
        return "set", (item.this.this.name, item.this.expression.sql("tsql"))
    if isinstance(tree, exp.Drop):
        assert tree.args["kind"] == "INDEX"
        return "drop_index", (table_of(tree), tree.this.name if tree.this else tree.args["tables"][0].name)
    if isinstance(tree, exp.Create):
        return "create_index", created_index(tree)
    action = alter_action(tree)
    table = table_of(tree)
    if isinstance(action, exp.Drop):
        return "drop_constraint", (table, action.args["tables"][0].name)
    if isinstance(action, exp.AlterColumn):
        return "alter_column", (table, action.this.name, action.args["dtype"].this, action.args["allow_null"])
    if isinstance(action, exp.AddConstraint):
        (constraint,) = action.expressions
        body = constraint.expressions
        if isinstance(body[0], exp.ForeignKey):
            fk = body[0]
            ref = fk.args["reference"].this
            options = [str(o) for o in fk.args["reference"].args.get("options") or []]
            return "add_fk", dict(table=table, name=constraint.this.name, columns=[c.name for c in fk.expressions],
                                  ref_table=(ref.this.args["db"].name, ref.this.name),
                                  ref_columns=[c.name for c in ref.expressions], check=bool(tree.args["check"]),
                                  options=options)
        if isinstance(body[0], exp.PrimaryKeyColumnConstraint):
            clustered = body[1]
            return "add_pk", dict(table=table, name=constraint.this.name,
                                  clustered=isinstance(clustered, exp.ClusteredColumnConstraint),
                                  columns=[o.this.name for o in clustered.this])
        if isinstance(body[0], exp.CheckColumnConstraint):
            return "add_check", dict(table=table, name=constraint.this.name, check=bool(tree.args["check"]),
                                     expression=body[0].this.sql("tsql"))
    raise AssertionError("unexpected statement %s" % statement)


# --------------------------------------------------------------------------
# The snapshot query and the fixtures agree
# --------------------------------------------------------------------------


def test_query_file_is_the_module_query_and_produces_every_key_the_fixtures_use():
    mssql = module_utils("dialects.mssql")
    text = (ROOT / "files" / "mssql_catalog_snapshot.sql").read_text()
    header, _sep, body = text.partition("SET NOCOUNT ON;")
    assert "SET NOCOUNT ON;" + body == mssql.CATALOG_QUERY
    assert all(line.startswith("--") for line in header.splitlines())
    for statement in re.findall(r"\b(INSERT|UPDATE|DELETE|DROP|ALTER|CREATE|TRUNCATE|MERGE)\b", mssql.CATALOG_QUERY):
        pytest.fail("the catalog query must only read, found %s" % statement)
    # every key of every fixture object is an alias the query produces
    for kind in mssql_snapshots.SNAPSHOTS:
        doc = load(kind)
        keys = set(doc)
        for section in ("server",):
            keys |= set(doc[section])
        for section in ("tables", "columns", "indexes", "foreign_keys", "check_constraints", "statistics",
                        "django_migrations"):
            for entry in doc[section]:
                keys |= set(entry)
                for sub in entry.get("columns", []) if isinstance(entry.get("columns"), list) else []:
                    keys |= set(sub)
        for key in keys:
            if key in ("app", "name", "applied") and "django_migrations" in mssql.CATALOG_QUERY:
                continue  # selected by name inside the sp_executesql string
            assert "AS [%s]" % key in mssql.CATALOG_QUERY, key


def test_fixtures_are_the_generator_output():
    for kind, build in mssql_snapshots.SNAPSHOTS.items():
        assert load(kind) == json.loads(json.dumps(build())), "regenerate: python -m tests.support.mssql_snapshots"


# --------------------------------------------------------------------------
# oauth_info
# --------------------------------------------------------------------------


def test_info_seed002_reports_every_nullable_unique_as_error():
    result = info("seed002")
    assert result["server"]["engine"] == "mssql" and result["server"]["database"] == "proposal"
    assert result["server"]["schema"] == "dbo"
    assert [f["code"] for f in result["findings"]] == ["nullable_unique_mssql"]
    finding = result["findings"][0]
    assert finding["severity"] == "error" and finding["seed"] == "002" and finding["repair"] == "filtered_unique_index"
    assert set(finding["objects"]) == {
        "%s.source_refresh_token_id" % AT, "%s.id_token_id" % AT, "%s.access_token_id" % RT,
        "%s.revoked" % RT, "myapp_course.catalog_url"}
    doc = load("seed002")
    uq = dict(((i["table"], i["columns"][0]["name"]), i["name"]) for i in doc["indexes"])
    by_index = dict((d["index"], d) for d in finding["details"]["indexes"])
    for table, column in ((AT, "source_refresh_token_id"), (AT, "id_token_id"), (RT, "access_token_id")):
        name = uq[(table, column)]
        assert name.startswith("UQ__") and by_index[name]["constraint"] is True
        assert by_index[name]["nullable"] == [column]
    assert by_index["myapp_course_catalog_url_uniq"]["constraint"] is False
    # the catalog holds no data: the checksum checks say so instead of pretending
    for table in (AT, RT):
        check = result["checksum_checks"][table]
        assert check["method"] == "not_computed" and check["mismatches"] is None and "no table data" in check["reason"]
    assert any("token_checksum" in line for line in result["limitations"])
    assert result["tables"][AT]["rows"] == 250000 and result["tables"][AT]["rows_exact"] is False
    state = result["migrations"]["oauth2_provider"]
    assert state["pending"] == [] and state["half_applied"] == [] and len(state["applied"]) == 22
    assert result["catalog_snapshot"]["taken_at"] == doc["taken_at"]
    assert result["summary"]["healthy"] is False


def test_info_healthy_snapshot_has_no_finding():
    result = info("healthy")
    assert result["findings"] == []
    assert result["summary"] == {"findings": 0, "by_severity": {"fatal": 0, "error": 0, "warning": 0, "info": 0},
                                 "codes": [], "healthy": True}


def test_info_intwidth_reports_the_int_key():
    result = info("intwidth")
    codes = [f["code"] for f in result["findings"]]
    assert codes.count("int_width_mismatch") == 1 and "nullable_unique_mssql" not in codes
    finding = next(f for f in result["findings"] if f["code"] == "int_width_mismatch")
    assert finding["severity"] == "fatal" and "error 1778" in finding["message"]
    assert finding["details"]["primary_key"] == {"table": APP, "column": "id", "type": "int"}
    refs = dict(((r["table"], r["column"]), r) for r in finding["details"]["referencing"])
    assert set(refs) == {(AT, "application_id"), (RT, "application_id"), (IDT, "application_id")}
    assert all(r["type"] == "bigint" and r["fk_missing"] for r in refs.values())


# --------------------------------------------------------------------------
# oauth_repair: filtered unique indexes (seed 002)
# --------------------------------------------------------------------------


def test_plan_seed002_filtered_unique_indexes():
    result = repair("seed002")
    doc = load("seed002")
    uq = dict(((i["table"], tuple(c["name"] for c in i["columns"])), i["name"]) for i in doc["indexes"])
    plan = result["plan"]
    assert all(s["status"] == "would_run" and s["changed"] is False for s in plan)
    # first the session: lock timeout and XACT_ABORT, as parsed SET statements
    assert plan[0]["key"] == "session_settings"
    assert [classify(s) for s in plan[0]["sql"]] == [("set", ("XACT_ABORT", "ON")), ("set", ("LOCK_TIMEOUT", "5000"))]
    flat = statements(result)
    kinds = [classify(s) for s in flat]
    for table, column in ((AT, "source_refresh_token_id"), (AT, "id_token_id"), (RT, "access_token_id"),
                          ("myapp_course", "catalog_url")):
        name = django_name(table, [column], "_uniq")     # mssql-django's name for unique=True, null=True
        creates = [i for i, (k, d) in enumerate(kinds) if k == "create_index" and d["name"] == name]
        assert len(creates) == 1, name
        created = kinds[creates[0]][1]
        assert created["schema"] == "dbo" and created["table"] == table
        assert created["columns"] == [(column, False)] and created["unique"] is True
        assert not_null_columns(created["where"]) == [column]
        assert "ONLINE" not in flat[creates[0]]        # Standard edition: offline build
        old = uq[(table, (column,))]
        drops = [i for i, (k, d) in enumerate(kinds) if k in ("drop_constraint", "drop_index") and d[1] == old]
        assert len(drops) == 1
        assert kinds[drops[0]][0] == ("drop_index" if table == "myapp_course" else "drop_constraint")
        assert kinds[drops[0]][1][0] == ("dbo", table)
        # the new index exists before the old one goes: uniqueness is enforced all along
        assert creates[0] < drops[0]
        create_step = step(result, "filtered_unique_index:%s.%s" % (table, name))
        drop_step = step(result, "drop_nullable_unique:%s.%s" % (table, old))
        assert create_step["guard"].startswith("NOT EXISTS") and "N'%s'" % name in create_step["guard"]
        assert "N'%s'" % old in drop_step["guard"] and "N'%s'" % name in drop_step["guard"]
        assert drop_step["finding"] == create_step["finding"] == "nullable_unique_mssql"
    # the unique_together over a nullable column keeps its Django name: replaced in one transaction
    together = django_name(RT, ["token_checksum", "revoked"], "_uniq")
    s = step(result, "filtered_unique_index:%s.%s" % (RT, together))
    assert s["transaction"] is True
    (k1, d1), (k2, d2) = [classify(x) for x in s["sql"]]
    assert (k1, d1) == ("drop_constraint", (("dbo", RT), together))
    assert k2 == "create_index" and d2["name"] == together
    assert d2["columns"] == [("token_checksum", False), ("revoked", False)]
    assert not_null_columns(d2["where"]) == ["token_checksum", "revoked"]
    # nothing else is touched: no table, column or constraint outside these
    assert {entry[0] for entry in kinds} == {"set", "create_index", "drop_constraint", "drop_index"}
    assert not result["not_repaired"]


def test_script_wraps_each_step_in_its_guard_and_go_batches():
    result = repair("seed002")
    script = result["tsql_script"]
    batches = [b.strip() for b in re.split(r"^GO$", script, flags=re.M) if b.strip()]
    body = [b for b in batches if not all(line.startswith("--") for line in b.splitlines())]
    assert len(body) == len(result["plan"])
    for batch, s in zip(body, result["plan"]):
        code = [line.strip() for line in batch.splitlines() if not line.startswith("--")]
        if s["guard"]:
            assert code[0] == "IF %s" % s["guard"] and code[1] == "BEGIN" and code[-1] == "END;"
        statements_in = [line for line in code if line.endswith(";") and line not in ("END;",)]
        assert [x.rstrip(";") for x in statements_in if x not in ("BEGIN TRANSACTION;", "COMMIT TRANSACTION;")
                and not x.startswith("IF NOT (")] == s["sql"]
    # the guards are valid T-SQL conditions too
    for s in result["plan"]:
        if s["guard"]:
            tree = sqlglot.parse_one("SELECT CASE WHEN %s THEN 1 ELSE 0 END" % s["guard"], read="tsql")
            assert isinstance(tree, exp.Select)


def test_online_option_and_edition():
    # Standard edition in the snapshot: offline unless asked
    assert repair("seed002")["report"]["online"] is False
    result = repair("seed002", mssql_online=True)
    creates = [s for s in statements(result) if s.startswith("CREATE")]
    assert creates and all(s.endswith(" WITH (ONLINE = ON)") for s in creates if "token_checksum" not in s)
    for s in creates:
        # sqlglot 30 cannot parse WHERE followed by WITH (...): the clause is checked on its own
        created = created_index(parse(s[:-len(" WITH (ONLINE = ON)")] if s.endswith("ON)") else s))
        assert created["unique"] and created["where"] is not None
    assert result["report"]["online"] is True
    lock = step(result, "filtered_unique_index:%s.%s" % (
        AT, django_name(AT, ["id_token_id"], "_uniq")))["lock"]
    assert "ONLINE = ON" in lock


def test_online_decided_by_edition(tmp_path):
    doc = load("seed002")
    doc["server"].update(edition="Enterprise Edition (64-bit)", engine_edition=3)
    path = write(tmp_path, doc)
    assert repair("seed002", path)["report"]["online"] is True
    assert "ONLINE = ON" not in "".join(statements(repair("seed002", path, mssql_online=False)))


def test_lock_and_statement_timeouts():
    result = repair("seed002", lock_timeout=7000, statement_timeout=90000)
    assert result["plan"][0]["sql"][-1] == "SET LOCK_TIMEOUT 7000"
    assert "-b -t 90 -i" in result["tsql_script"]
    # a lock wait is always bounded: 0 (which would be "no limit") is refused before anything is planned
    refused = run_module("oauth_repair", params("seed002", None, lock_timeout=0))
    assert refused["failed"] and "lock_timeout=0 is out of range" in refused["msg"] and refused["changed"] is False


def test_same_plan_every_run_and_in_check_mode():
    first = repair("seed002")
    second = repair("seed002", check_mode=True)
    assert first["plan"] == second["plan"] and first["tsql_script"] == second["tsql_script"]


def test_fix_selects_findings():
    only = repair("seed002", fix=["int_width_mismatch"])
    assert only["plan"] == [] and "Nothing to do" in only["tsql_script"]
    other = repair("intwidth", fix=["nullable_unique_mssql"])
    assert other["plan"] == []
    codes = {n["code"] for n in repair("intwidth", fix=["migration_half_applied"])["not_repaired"]}
    assert codes == {"migration_half_applied"}


def test_healthy_snapshot_plans_nothing():
    result = repair("healthy", diff=True)
    assert result["plan"] == [] and result["not_repaired"] == [] and result["findings"] == []
    assert "Nothing to do" in result["tsql_script"]
    assert result["diff"] == {"before": "\n", "after": "\n"}


def test_diff_shows_schema_before_and_after():
    result = repair("seed002", diff=True)
    before, after = result["diff"]["before"], result["diff"]["after"]
    name = django_name(AT, ["source_refresh_token_id"], "_uniq")
    assert "UNIQUE %s (source_refresh_token_id) WHERE" % name in after and name not in before
    old = next(i["name"] for i in load("seed002")["indexes"]
               if i["table"] == AT and i["columns"][0]["name"] == "source_refresh_token_id")
    assert old in before and old not in after


# --------------------------------------------------------------------------
# oauth_repair: int -> bigint
# --------------------------------------------------------------------------


def test_plan_intwidth_drop_and_recreate_in_order():
    result = repair("intwidth")
    doc = load("intwidth")
    s = step(result, "widen_integer_keys:%s.id" % APP)
    assert s["finding"] == "int_width_mismatch" and s["transaction"] is True and s["duration"] == "proportional"
    kinds = [classify(x) for x in s["sql"]]
    index = dict((i["name"], i) for i in doc["indexes"])
    pk_name = next(i["name"] for i in doc["indexes"] if i["table"] == APP and i["primary"])
    fks_to_app = sorted(f["name"] for f in doc["foreign_keys"] if f["ref_table"] == APP)
    assert fks_to_app == sorted(["myapp_clientnote_application_id_%s_fk_%s_id" % (
        names_digest("myapp_clientnote", "application_id", length=8), APP),
        "%s_application_id_%s_fk_%s_id" % (GRANT, names_digest(GRANT, "application_id", length=8), APP)])

    def positions(kind, pred=lambda d: True):
        return [i for i, (k, d) in enumerate(kinds) if k == kind and pred(d)]

    fk_drops = positions("drop_constraint", lambda d: d[1] in fks_to_app)
    pk_drop = positions("drop_constraint", lambda d: d[1] == pk_name)
    alters = positions("alter_column")
    pk_add = positions("add_pk")
    fk_adds = positions("add_fk")
    index_drops = positions("drop_index")
    index_adds = positions("create_index")
    assert len(fk_drops) == 2 and len(pk_drop) == 1 and len(alters) == 3 and len(pk_add) == 1
    # FKs dropped before the PK, the PK before the ALTERs, everything recreated after, FKs last
    assert max(fk_drops) < pk_drop[0] < min(alters)
    assert max(index_drops) < pk_drop[0]                 # nonclustered before the clustered key
    assert max(alters) < pk_add[0] < min(index_adds) and max(index_adds) < min(fk_adds)
    assert fk_adds == list(range(len(kinds) - len(fk_adds), len(kinds)))
    # the widened columns, with their nullability kept
    assert sorted(kinds[i][1] for i in alters) == sorted([
        (("dbo", APP), "id", exp.DataType.Type.BIGINT, False),
        (("dbo", GRANT), "application_id", exp.DataType.Type.BIGINT, False),
        (("dbo", "myapp_clientnote"), "application_id", exp.DataType.Type.BIGINT, True)])
    # the primary key comes back under its system name, clustered as before, on the same column
    assert kinds[pk_add[0]][1] == dict(table=("dbo", APP), name=pk_name, clustered=True, columns=["id"])
    assert index[pk_name]["type"] == "CLUSTERED"
    # Django's FK indexes on the widened columns are dropped and recreated under their names
    dropped = sorted(kinds[i][1][1] for i in index_drops)
    recreated = sorted(kinds[i][1]["name"] for i in index_adds)
    assert dropped == recreated == sorted([django_name(GRANT, ["application_id"]),
                                           django_name("myapp_clientnote", ["application_id"])])
    # foreign keys: the two existing ones with their names and actions, plus the three the migrations could not
    # create, all WITH CHECK
    added = dict((kinds[i][1]["name"], kinds[i][1]) for i in fk_adds)
    missing = ["%s_application_id_%s_fk_%s_id" % (t, names_digest(t, "application_id", length=8), APP)
               for t in (AT, RT, IDT)]
    assert sorted(added) == sorted(fks_to_app + missing)
    for fk in added.values():
        assert fk["check"] is True and fk["ref_table"] == ("dbo", APP) and fk["ref_columns"] == ["id"]
        assert fk["columns"] == ["application_id"]
    clientnote = next(v for v in added.values() if v["table"] == ("dbo", "myapp_clientnote"))
    assert clientnote["options"] == ["ON DELETE CASCADE"]
    assert all(v["options"] == [] for v in added.values() if v is not clientnote)
    # the CHECK constraint and the statistics on a widened column: dropped, then recreated
    check = [d for k, d in kinds if k == "add_check"]
    assert check == [dict(table=("dbo", "myapp_clientnote"), name="myapp_clientnote_application_id_positive",
                          check=True, expression="[application_id] > (0)")]
    assert ("drop_constraint", (("dbo", "myapp_clientnote"), "myapp_clientnote_application_id_positive")) in kinds
    assert ("drop_statistics", "DROP STATISTICS [dbo].[%s].[st_grant_application_user]" % GRANT) in kinds
    assert ("create_statistics", "CREATE STATISTICS [st_grant_application_user] ON [dbo].[%s] "
            "([application_id], [user_id])" % GRANT) in kinds
    assert positions("drop_statistics")[0] < pk_drop[0] and positions("create_statistics")[0] > pk_add[0]
    # IDENTITY: kept by ALTER COLUMN, checked before COMMIT
    assert any("IsIdentity" in v for v in s["verify"])
    assert "COLUMNPROPERTY(OBJECT_ID(N'[dbo].[%s]'), N'id', 'IsIdentity') = 1" % APP in result["tsql_script"]
    assert "ALTER COLUMN keeps the IDENTITY" in " ".join(s["notes"])
    # the guard: the step runs while any widened column is still int
    assert s["guard"].count("= N'int'") == 3
    script = result["tsql_script"]
    assert script.index("BEGIN TRANSACTION;") < script.index(s["sql"][0]) < script.index("COMMIT TRANSACTION;")
    # the half-applied migrations only lack those foreign keys, and the plan says so
    reasons = [n["reason"] for n in result["not_repaired"] if n["code"] == "migration_half_applied"]
    assert reasons and all("created by step widen_integer_keys:%s.id" % APP in r for r in reasons)


def test_widening_recreates_a_default_on_a_widened_column(tmp_path):
    doc = load("intwidth")
    col = next(c for c in doc["columns"] if c["table"] == GRANT and c["name"] == "application_id")
    col.update(default_name="DF__oauth2_pr__appli__1A2B3C4D", default_definition="((0))")
    result = repair("intwidth", write(tmp_path, doc))
    sql = step(result, "widen_integer_keys:%s.id" % APP)["sql"]
    drop = sql.index("ALTER TABLE [dbo].[%s] DROP CONSTRAINT [DF__oauth2_pr__appli__1A2B3C4D]" % GRANT)
    add = sql.index("ALTER TABLE [dbo].[%s] ADD CONSTRAINT [DF__oauth2_pr__appli__1A2B3C4D] DEFAULT ((0)) "
                    "FOR [application_id]" % GRANT)
    alter = next(i for i, x in enumerate(sql) if "ALTER COLUMN [application_id]" in x and GRANT in x)
    assert drop < alter < add


def test_widening_refused_when_another_schema_references_the_key(tmp_path):
    doc = load("intwidth")
    doc["foreign_keys"].append(dict(name="audit_app_fk", schema="audit", table="log", ref_schema="dbo",
                                    ref_table=APP, on_delete="NO_ACTION", on_update="NO_ACTION",
                                    columns=[dict(column="application_id", ref_column="id")]))
    result = repair("intwidth", write(tmp_path, doc))
    assert not any(s["key"].startswith("widen_integer_keys") for s in result["plan"])
    refused = [n for n in result["not_repaired"] if n["reason"] == "refused"]
    assert refused and "audit.audit_app_fk" in refused[0]["message"] and refused[0]["code"] == "int_width_mismatch"


def test_filtered_index_refused_when_a_foreign_key_relies_on_the_constraint(tmp_path):
    doc = load("seed002")
    uq = next(i["name"] for i in doc["indexes"] if i["table"] == AT and i["columns"][0]["name"] == "id_token_id")
    doc["foreign_keys"].append(dict(name="myapp_x_fk", schema="dbo", table="myapp_course", ref_schema="dbo",
                                    ref_table=AT, key_index=uq, on_delete="NO_ACTION", on_update="NO_ACTION",
                                    columns=[dict(column="catalog_url", ref_column="id_token_id")]))
    result = repair("seed002", write(tmp_path, doc))
    assert not any(uq in s["key"] for s in result["plan"])
    assert any(n["reason"] == "refused" and "myapp_x_fk" in n["message"] for n in result["not_repaired"])
    # the other indexes are still planned
    assert any(s["key"].startswith("drop_nullable_unique:%s" % RT) for s in result["plan"])


# --------------------------------------------------------------------------
# Reading what sqlcmd writes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["chunked_crlf_with_message", "utf16", "utf8_bom"])
def test_snapshot_as_sqlcmd_writes_it(tmp_path, form):
    text = json.dumps(load("seed002"), separators=(",", ":"))
    path = tmp_path / "snapshot.json"
    if form == "chunked_crlf_with_message":
        # sqlcmd can print a message first, and cuts long values into lines
        chunks = [text[i:i + 2033] for i in range(0, len(text), 2033)]
        path.write_bytes(("Changed database context to 'proposal'.\r\n" + "\r\n".join(chunks) + "\r\n").encode())
    elif form == "utf16":
        path.write_bytes(text.encode("utf-16"))
    else:
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert info("seed002", path)["findings"] == info("seed002")["findings"]


# --------------------------------------------------------------------------
# Bad input: a precise error, nothing else
# --------------------------------------------------------------------------


def fails(module, p):
    result = run_module(module, p)
    assert result.get("failed"), result
    assert result["changed"] is False and result.get("executed_queries", []) == []
    assert "tsql_script" not in result and "plan" not in result or result.get("plan") == []
    assert "Fix:" in result["msg"]
    return result


def both_fail(p, *expected):
    for module in ("oauth_info", "oauth_repair"):
        result = fails(module, p)
        for text in expected:
            assert text in result["msg"], (module, result["msg"])
    return result


def test_missing_snapshot(tmp_path):
    missing = tmp_path / "nope.json"
    both_fail(params("seed002", missing), "catalog snapshot %s does not exist" % missing,
              "files/mssql_catalog_snapshot.sql")
    assert not missing.exists()


@pytest.mark.parametrize("text, expected", [
    ("", "the file is empty"),
    ("Msg 208, Level 16, State 1: Invalid object name 'sys.tabels'.\n", "no line starts with '{'"),
    ('{"format": "django_ops.oauth_repair/mssql-catalog", "tables": [{"na', "cut short"),
    ('{"format": "something else"}', "is not a catalog snapshot of this collection"),
    ('[1, 2]', "holds no JSON document"),
    ('{"format": 1', "is not valid JSON"),
])
def test_malformed_snapshot(tmp_path, text, expected):
    both_fail(params("seed002", write(tmp_path, text)), expected)


def test_wrong_format_version(tmp_path):
    doc = load("seed002")
    doc["format_version"] = 2
    both_fail(params("seed002", write(tmp_path, doc)), "format_version 2")


def test_unknown_table_in_snapshot(tmp_path):
    doc = load("seed002")
    doc["indexes"].append(dict(table="ghost_table", name="ix_ghost", index_id=2, type="NONCLUSTERED", unique=False,
                               primary=False, unique_constraint=False, disabled=False,
                               columns=[dict(name="a", key_ordinal=1, descending=False, included=False)]))
    both_fail(params("seed002", write(tmp_path, doc)), "'ghost_table', which is not in its tables list",
              "[object: ghost_table]")


def test_foreign_key_to_unknown_table(tmp_path):
    doc = load("seed002")
    doc["foreign_keys"][0]["ref_table"] = "ghost_table"
    both_fail(params("seed002", write(tmp_path, doc)), "references table 'ghost_table'")


def test_unknown_column_in_snapshot(tmp_path):
    doc = load("seed002")
    doc["indexes"][-1]["columns"][0]["name"] = "no_such_column"
    both_fail(params("seed002", write(tmp_path, doc)), "no_such_column", "which the snapshot does not list")


HOSTILE = "a]; DROP TABLE x--"


@pytest.mark.parametrize("where", ["table", "column", "index", "foreign_key", "schema", "check", "filter",
                                   "default", "sqlcmd_variable"])
def test_hostile_identifiers_and_expressions_are_refused(tmp_path, where):
    doc = load("seed002")
    if where == "table":
        old = doc["tables"][0]["name"]
        doc["tables"][0]["name"] = HOSTILE
        for section in ("columns", "indexes"):
            for e in doc[section]:
                if e["table"] == old:
                    e["table"] = HOSTILE
    elif where == "column":
        doc["columns"][3]["name"] = HOSTILE
    elif where == "index":
        doc["indexes"][0]["name"] = HOSTILE
    elif where == "foreign_key":
        doc["foreign_keys"][0]["name"] = HOSTILE
    elif where == "schema":
        doc["schema"] = HOSTILE
    elif where == "check":
        doc["check_constraints"][0]["definition"] = "([interval]>=(0)); DROP TABLE x--"
    elif where == "filter":
        doc["indexes"][1]["filter"] = "([a] IS NOT NULL) OR (1=1)"
    elif where == "default":
        doc["columns"][3].update(default_name="DF_x", default_definition="((0))\nGO\nDROP TABLE x")
    else:
        doc["check_constraints"][0]["definition"] = "([interval]>=$(zero))"
    result = both_fail(params("seed002", write(tmp_path, doc)), "refusing")
    assert "sp_rename" in result["msg"] or "by hand" in result["msg"]


def test_database_mismatch():
    both_fail(params("seed002", db="other_db"), "is of database 'proposal', not of db='other_db'")


def test_snapshot_option_needs_engine_mssql(tmp_path):
    db = tmp_path / "site.sqlite3"
    result = fails("oauth_info", {"engine": "sqlite", "db": str(db), "catalog_snapshot": str(
        mssql_snapshots.path("healthy"))})
    assert "catalog_snapshot is only read with engine mssql" in result["msg"]
    assert not db.exists()


def test_mssql_without_snapshot_needs_pymssql():
    connection = module_utils("connection")
    mssql = module_utils("dialects.mssql")
    if mssql.pymssql is not None:
        pytest.skip("pymssql is installed here: the live path would try to connect")
    p = {"engine": "mssql", "db": "site", "login_password": "S3cr3t-pw"}
    for module in ("oauth_info", "oauth_repair"):
        result = fails(module, p)
        assert "pymssql" in result["msg"] and "catalog_snapshot" in result["msg"]
        assert "S3cr3t-pw" not in json.dumps(result)
    assert "mssql" in connection.ENGINES


def test_other_modules_refuse_engine_mssql():
    result = run_module("django_migration", {"engine": "mssql", "db": "proposal", "catalog_snapshot": str(
        mssql_snapshots.path("seed002")), "app": "oauth2_provider", "name": "0001_initial"})
    assert result.get("failed") and result["changed"] is False and result.get("executed_queries", []) == []
    assert "plan-only" in result["msg"]


def test_hostile_option_names_are_refused():
    result = fails("oauth_info", params("seed002", natural_pk_tables=[HOSTILE]))
    assert "refusing table name" in result["msg"]
    result = fails("oauth_repair", params("seed002", natural_pk_tables=["ghost_table"]))
    assert "'ghost_table' named in natural_pk_tables does not exist" in result["msg"]


def test_stand_in_connection_never_runs_sql():
    connection = module_utils("connection")
    common = module_utils("common")
    conn = connection.connect(params("seed002"))
    assert isinstance(conn, connection.CatalogConnection) and conn.raw is None
    for call in (lambda: conn.execute("DROP TABLE x"), lambda: conn.query("SELECT 1"),
                 lambda: conn.scalar("SELECT 1"), conn.cursor):
        with pytest.raises(common.OAuthRepairError, match="plan-only"):
            call()
    assert conn.executed_queries == []


# --------------------------------------------------------------------------
# Dialect details
# --------------------------------------------------------------------------


def test_quoting_and_expression_checks():
    mssql = module_utils("dialects.mssql")
    common = module_utils("common")
    d = mssql.MSSQLDialect("16.0.4135.4")
    assert d.quote("oauth2_provider_accesstoken") == "[oauth2_provider_accesstoken]"
    assert d.table_ref("t") == "[dbo].[t]"
    for bad in (HOSTILE, "a b", "1abc", "x" * 129, "", None, "a'b"):
        with pytest.raises(common.OAuthRepairError):
            d.quote(bad)
    for good in ("([c] IS NOT NULL)", "((0))", "(getdate())", "(isjson([resource])=(1))",
                 "([a]>=(0) AND [b]<>N'x;y--z')", "([status]='it''s')"):
        assert mssql.check_expression(good, "x", "s") == good
    for bad in ("[c] IS NOT NULL", "([c] IS NOT NULL) OR (1=1)", "((0)); DROP TABLE x", "((0)) -- x",
                "((0) /* x */)", "([a]>(0)", "(N'unterminated)", "([a]]]>(0))", "($(var))", "((0)\nGO)"):
        with pytest.raises(common.OAuthRepairError):
            mssql.check_expression(bad, "x", "s")
    index = mssql.MSSQLIndex(name="i", table="t", columns=["a", "b"], unique=True, partial=True,
                             where="([a] IS NOT NULL AND [b] IS NOT NULL)")
    assert mssql.nulls_only_filter(index)
    index.where = "([a] IS NOT NULL AND [b]>(0))"
    assert not mssql.nulls_only_filter(index)
    assert d.session_timeouts(0, 0) == ["SET LOCK_TIMEOUT -1"]
    assert d.session_timeouts(3000, 0) == ["SET LOCK_TIMEOUT 3000"]


@pytest.mark.parametrize("kind, codes", [("seed002", {"nullable_unique_mssql"}),
                                         ("intwidth", {"int_width_mismatch", "migration_half_applied"})])
def test_the_schema_the_plan_leaves_has_none_of_those_findings(kind, codes):
    """Re-diagnosing the catalog as the plan leaves it (the planner's model of the end state) finds nothing the
    plan repairs, and plans nothing: the second run after the script is empty."""
    connection = module_utils("connection")
    plan_mod = module_utils("mssql_plan")
    conn = connection.connect(params(kind))
    options = dict(lock_timeout=5000)
    before, snap = plan_mod.diagnose(conn, options)
    assert codes <= {f["code"] for f in before["findings"]}
    builder = plan_mod.PlanBuilder(snap, options)
    assert builder.build(before["findings"])
    conn.catalog.tables = builder.work
    after, snap_after = plan_mod.diagnose(conn, options)
    assert not codes & {f["code"] for f in after["findings"]}, after["findings"]
    assert plan_mod.PlanBuilder(snap_after, options).build(after["findings"]) == []


def test_widening_adds_djangos_index_with_a_missing_foreign_key(tmp_path):
    doc = load("intwidth")
    name = django_name(AT, ["application_id"])
    doc["indexes"] = [i for i in doc["indexes"] if i["name"] != name]
    sql = step(repair("intwidth", write(tmp_path, doc)), "widen_integer_keys:%s.id" % APP)["sql"]
    kinds = [classify(x) for x in sql]
    create = [i for i, (k, d) in enumerate(kinds) if k == "create_index" and d["name"] == name]
    fk = [i for i, (k, d) in enumerate(kinds) if k == "add_fk" and d["table"] == ("dbo", AT)]
    assert len(create) == 1 and len(fk) == 1 and create[0] < fk[0]
    assert kinds[create[0]][1]["columns"] == [("application_id", False)] and not kinds[create[0]][1]["unique"]


def test_diff_of_a_widening_covers_every_table_it_touches():
    diff = repair("intwidth", diff=True)["diff"]
    fk = "%s_application_id_%s_fk_%s_id" % (AT, names_digest(AT, "application_id", length=8), APP)
    for table in (APP, GRANT, "myapp_clientnote", AT, RT, IDT):
        assert "%s:\n" % table in diff["before"] and "%s:\n" % table in diff["after"]
    assert "  id int NOT NULL AUTO\n" in diff["before"] and "  id bigint NOT NULL AUTO\n" in diff["after"]
    assert fk not in diff["before"] and "FOREIGN KEY %s (application_id) -> %s (id)" % (fk, APP) in diff["after"]
