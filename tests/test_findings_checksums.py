"""Findings of field report 004 (shared/seeds/004_*.txt): DOT 3.0.0 added a unique
``AccessToken.token_checksum``; existing rows got '' and the unique index failed.

Covers ``token_checksum_empty``, ``_null``, ``_duplicate``, ``_mismatch``, ``_unique_missing`` and
``_preupgrade`` on all three engines, from databases migrated by the real DOT migrations with tokens
issued by DOT's own models (tests.support.django.issue_tokens) or bulk-inserted, then put in the state
the report (or an interrupted backfill) leaves. Also proves that the database-side sha256 equals
Python's ``hashlib.sha256(token.encode('utf-8'))`` for non-ASCII tokens, including from a latin1
column on MariaDB, and exercises the sampling path of the checksum check.
"""

from __future__ import annotations

import json

import pytest

from tests.findings_helpers import (
    AT, ENGINES, M0011, M0012, M0015, RT, all_of, assert_codes, copy_row, drop_unique, info, migration_state,
    one, ph, qi, set_checksums, sha, token_rows)
# pytest fixtures, found by name:
from tests.findings_helpers import (  # noqa: F401 pylint: disable=unused-import
    _templates_mysql, _templates_postgresql, _templates_sqlite, make_db)
from tests.support import data, servers
from tests.support.django import issue_tokens, migrate, token_authenticates
from tests.support.modules import module_utils

NON_ASCII_TOKEN = "tøkén-ü-€"
LATIN1_TOKEN = "tøkén-ü-ß-Ärger"  # every character exists in latin1


def set_checksum(target, table, row_id, value):
    target.execute("UPDATE %s SET token_checksum = %s WHERE id = %s" % (qi(target, table), ph(target), ph(target)),
                   (value, row_id))


def ids_and_tokens(target, table=AT):
    return [(r[0], r[1]) for r in token_rows(target, table)]


def unique_0012_missing(result):
    """The finding pair a dropped unique index on a recorded 0012 gives."""
    unique = one(result, "token_checksum_unique_missing")
    assert unique["severity"] == "fatal"
    assert unique["objects"] == [AT + ".token_checksum"]
    assert unique["details"] == {"columns": ["token_checksum"], "migration": M0012}
    assert unique["repair"] == "create_checksum_unique_index"
    half = one(result, "migration_half_applied")
    assert half["objects"] == ["oauth2_provider." + M0012, AT + " (token_checksum) unique"]
    assert half["details"]["recorded"] is True
    assert migration_state(result, M0012)["status"] == "recorded_missing_objects"


# --------------------------------------------------------------------------
# The seed's state: '' checksums without the unique index
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_empty_checksums_without_unique_index(make_db, engine):
    """DOT 3.0.0's failed migration: the unique index is not there and several rows hold ''.
    Those tokens really stop authenticating; the untouched ones still do."""
    target = make_db(engine, "tokens")
    rows = ids_and_tokens(target)
    assert len(rows) == 5
    drop_unique(target, AT, ["token_checksum"])
    emptied = rows[:3]
    for row_id, _token in emptied:
        set_checksum(target, AT, row_id, "")

    result = info(target)
    assert_codes(result, "token_checksum_empty", "token_checksum_unique_missing", "migration_half_applied")
    empty = one(result, "token_checksum_empty")
    assert empty["severity"] == "error"
    assert empty["objects"] == [AT + ".token_checksum"]
    assert empty["details"] == {"rows": 3, "total": 5, "migration": M0012}
    assert empty["seed"] == "004" and empty["repair"] == "backfill_token_checksum"
    unique_0012_missing(result)
    # '' is neither a duplicate group nor a mismatch: it is reported once, as empty
    assert all_of(result, "token_checksum_duplicate") == []
    assert all_of(result, "token_checksum_mismatch") == []
    assert result["checksum_checks"][AT] == {"method": "full", "rows_checked": 5, "mismatches": 0}

    assert token_authenticates(target, emptied[0][1]) is False
    assert token_authenticates(target, rows[4][1]) is True


# --------------------------------------------------------------------------
# NULLs: a backfill killed half-way
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_null_checksums_after_killed_backfill(make_db, engine):
    """At 0011 with 30 tokens, 0012's nullable column was added and the backfill killed after 20 rows."""
    target = make_db(engine, "at_0011")
    seeded = data.bulk_insert_access_tokens(target, 30, None, None, with_checksum=False)
    target.execute("ALTER TABLE %s ADD COLUMN %s varchar(64) NULL" % (qi(target, AT), qi(target, "token_checksum")))
    set_checksums(target, AT, [(row_id, sha(token)) for row_id, token in ids_and_tokens(target)[:20]])
    assert seeded.count == 30

    result = info(target)
    assert_codes(result, "token_checksum_null", "token_checksum_unique_missing", "migration_half_applied")
    null = one(result, "token_checksum_null")
    assert null["severity"] == "error"
    assert null["objects"] == [AT + ".token_checksum"]
    assert null["details"] == {"rows": 10, "total": 30, "migration": M0012}
    unique = one(result, "token_checksum_unique_missing")
    assert unique["severity"] == "error"  # 0012 is not recorded: half-applied, not broken after the fact
    assert "half-applied" in unique["message"]
    assert one(result, "migration_half_applied")["details"]["migration"] == M0012
    # the 20 backfilled rows are right; NULL rows are not mismatches
    assert result["checksum_checks"][AT] == {"method": "full", "rows_checked": 30, "mismatches": 0}
    assert all_of(result, "token_checksum_preupgrade") == []


# --------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_duplicate_checksums(make_db, engine):
    """Without the unique index the same token was stored three times (token is a plain TextField since
    0012): one checksum group of 3 rows, all correct, so no mismatch."""
    target = make_db(engine, "tokens")
    drop_unique(target, AT, ["token_checksum"])
    (first_id, first_token), (second_id, _tok) = ids_and_tokens(target)[:2]
    copy_row(target, AT, first_id)
    copy_row(target, AT, first_id)

    result = info(target)
    assert_codes(result, "token_checksum_duplicate", "token_checksum_unique_missing", "migration_half_applied")
    dup = one(result, "token_checksum_duplicate")
    assert dup["severity"] == "error"
    assert dup["objects"] == [AT + ".token_checksum"]
    assert dup["details"] == {"groups": 1, "examples": [{"checksum": sha(first_token), "rows": 3}]}
    assert dup["repair"] == "report_checksum_duplicates"
    unique_0012_missing(result)
    assert result["checksum_checks"][AT] == {"method": "full", "rows_checked": 7, "mismatches": 0}


@pytest.mark.parametrize("engine", ENGINES)
def test_duplicate_checksums_two_passes(make_db, engine, monkeypatch):
    """The duplicate check groups on a 16-character prefix of the checksum first, then exactly over the
    candidates (repair_checksum.duplicate_groups, shared with the repair): rows that only share a prefix
    with a group are not counted in it, '' is left out, and the number of groups and the examples (largest
    first) are the same when the first pass finds too many candidates and the second groups the whole table."""
    target = make_db(engine, "tokens")
    drop_unique(target, AT, ["token_checksum"])
    rows = ids_and_tokens(target)
    (a_id, a_token), (b_id, b_token) = rows[:2]
    copy_row(target, AT, a_id)
    copy_row(target, AT, a_id)                                        # group A: 3 rows
    copy_row(target, AT, b_id)                                        # group B: 2 rows
    prefix = sha(a_token)[:16]
    for filler in "01":                                               # A's prefix, other checksums (mismatches)
        copy_row(target, AT, rows[2][0], token="prefix-only-" + filler, token_checksum=prefix + filler * 48)
    for row_id, _token in rows[3:5]:                                  # two '', not a duplicate group
        set_checksum(target, AT, row_id, "")
    expected = {"groups": 2, "examples": [{"checksum": sha(a_token), "rows": 3}, {"checksum": sha(b_token), "rows": 2}]}

    result = info(target)
    assert_codes(result, "token_checksum_duplicate", "token_checksum_empty", "token_checksum_mismatch",
                 "token_checksum_unique_missing", "migration_half_applied")
    assert one(result, "token_checksum_duplicate")["details"] == expected
    assert one(result, "token_checksum_mismatch")["details"]["rows"] == 2

    repair_checksum = module_utils("repair_checksum")
    monkeypatch.setattr(repair_checksum, "DUPLICATE_CANDIDATES", 1)  # the first pass is cut: exact pass over all
    assert one(info(target, check_mode_too=False), "token_checksum_duplicate")["details"] == expected


@pytest.mark.parametrize("engine", ENGINES)
def test_duplicate_refresh_checksums(make_db, engine):
    """Refresh tokens are unique on (token_checksum, revoked): two revoked copies with the same revoked
    time block that index and are reported; active copies (revoked NULL) do not block it and are not."""
    target = make_db(engine, "tokens")
    drop_unique(target, RT, ["token_checksum", "revoked"])
    (a_id, a_token), (b_id, _b) = ids_and_tokens(target, RT)[:2]
    revoked = "2025-01-02 03:04:05+00" if engine == "postgresql" else "2025-01-02 03:04:05"
    target.execute("UPDATE %s SET revoked = %s WHERE id = %s" % (qi(target, RT), ph(target), ph(target)),
                   (revoked, a_id))
    copy_row(target, RT, a_id, access_token_id=None)          # same checksum, same revoked: blocks the index
    copy_row(target, RT, b_id, access_token_id=None)          # same checksum, both active: allowed

    result = info(target)
    assert_codes(result, "token_checksum_duplicate", "token_checksum_unique_missing", "migration_half_applied")
    dup = one(result, "token_checksum_duplicate")
    assert dup["objects"] == [RT + ".token_checksum"]
    assert dup["details"]["groups"] == 1
    assert [(e["checksum"], e["rows"]) for e in dup["details"]["examples"]] == [(sha(a_token), 2)]
    unique = one(result, "token_checksum_unique_missing")
    assert unique["severity"] == "fatal"
    assert unique["objects"] == [RT + ".token_checksum"]
    assert unique["details"] == {"columns": ["token_checksum", "revoked"], "migration": M0015}
    half = one(result, "migration_half_applied")
    assert half["objects"] == ["oauth2_provider." + M0015, RT + " (token_checksum, revoked) unique"]


# --------------------------------------------------------------------------
# Mismatches, non-ASCII tokens, sampling
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_wrong_checksum(make_db, engine):
    """One token's checksum is the sha256 of something else: it no longer authenticates, and it is the
    only finding. A non-ASCII token stored with its correct checksum is NOT a mismatch."""
    target = make_db(engine, "tokens")
    rows = ids_and_tokens(target)
    bad_id, bad_token = rows[2]
    set_checksum(target, AT, bad_id, sha("not-" + bad_token))
    copy_row(target, AT, rows[0][0], token=NON_ASCII_TOKEN, token_checksum=sha(NON_ASCII_TOKEN))

    result = info(target)
    assert_codes(result, "token_checksum_mismatch")
    f = one(result, "token_checksum_mismatch")
    assert f["severity"] == "error"
    assert f["objects"] == [AT + ".token_checksum"]
    assert f["details"] == {"rows": 1, "method": "full", "rows_checked": 6, "example_ids": [bad_id],
                            "migration": M0012}
    assert result["checksum_checks"][AT] == {"method": "full", "rows_checked": 6, "mismatches": 1}
    assert result["checksum_checks"][RT] == {"method": "full", "rows_checked": 5, "mismatches": 0}
    assert token_authenticates(target, bad_token) is False


@pytest.mark.parametrize("engine", ENGINES)
def test_non_ascii_tokens_hash_like_python(make_db, engine):
    """The database-side sha256 of a non-ASCII token equals hashlib.sha256(token.encode('utf-8')):
    access and refresh tokens with their correct checksums give no finding at all."""
    target = make_db(engine, "tokens")
    at_id = copy_row(target, AT, ids_and_tokens(target)[0][0], token=NON_ASCII_TOKEN,
                     token_checksum=sha(NON_ASCII_TOKEN))
    rt_id = copy_row(target, RT, ids_and_tokens(target, RT)[0][0], token=NON_ASCII_TOKEN + "-r",
                     token_checksum=sha(NON_ASCII_TOKEN + "-r"), access_token_id=None)
    stored = target.query("SELECT token FROM %s WHERE id = %s" % (qi(target, AT), ph(target)), (at_id,))
    assert stored == [(NON_ASCII_TOKEN,)]
    assert target.query("SELECT token FROM %s WHERE id = %s" % (qi(target, RT), ph(target)), (rt_id,)) == [
        (NON_ASCII_TOKEN + "-r",)]

    result = info(target)
    assert result["findings"] == []
    assert result["checksum_checks"][AT] == {"method": "full", "rows_checked": 6, "mismatches": 0}
    assert result["checksum_checks"][RT] == {"method": "full", "rows_checked": 6, "mismatches": 0}


@pytest.mark.mysql
def test_non_ascii_token_in_latin1_column_mariadb(make_db):
    """On MariaDB the token column converted to latin1: SHA2() of the raw column hashes latin1 bytes
    (so a naive check would flag every non-ASCII token), the diagnosis must hash the UTF-8 text."""
    target = make_db("mysql", "tokens")
    target.execute("ALTER TABLE `%s` MODIFY `token` longtext CHARACTER SET latin1 NOT NULL" % AT)
    assert target.query(
        "SELECT character_set_name FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND table_name = %s AND column_name = 'token'", (AT,)) == [("latin1",)]
    row_id = copy_row(target, AT, ids_and_tokens(target)[0][0], token=LATIN1_TOKEN, token_checksum=sha(LATIN1_TOKEN))
    (hex_bytes, raw_sha), = target.query("SELECT HEX(token), LOWER(SHA2(token, 256)) FROM `%s` WHERE id = %%s" % AT,
                                         (row_id,))
    assert bytes.fromhex(hex_bytes) == LATIN1_TOKEN.encode("latin1")  # really stored as latin1
    assert raw_sha != sha(LATIN1_TOKEN)                               # the trap the check must avoid

    result = info(target)
    assert result["findings"] == [], json.dumps(result["findings"])
    assert result["checksum_checks"][AT] == {"method": "full", "rows_checked": 6, "mismatches": 0}
    token_col = [c for c in result["tables"][AT]["columns"] if c["name"] == "token"][0]
    assert token_col["charset"] == "latin1"

    # and a wrong checksum on a latin1 row is still caught
    set_checksum(target, AT, row_id, sha(LATIN1_TOKEN.encode("utf-8").decode("latin1")))
    result = info(target)
    assert_codes(result, "token_checksum_mismatch")
    assert one(result, "token_checksum_mismatch")["details"]["example_ids"] == [row_id]


@pytest.mark.postgresql
def test_non_ascii_token_in_latin1_database_postgresql(request):
    """A PostgreSQL database created with ENCODING 'LATIN1' (old clusters): the text is stored as latin1
    bytes, the diagnosis hashes its UTF-8 conversion, like DOT does in Python."""
    server = request.getfixturevalue("postgres_server")
    name = servers.new_database_name()
    server._admin("CREATE DATABASE \"%s\" TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'" % name)
    try:
        target = servers.DBTarget("postgresql", name, server.host, server.port, server.user, server.password,
                                  server=server)
        assert target.query("SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = %s",
                            (name,)) == [("LATIN1",)]
        migrate(target)
        issued = issue_tokens(target, 2)
        row_id = copy_row(target, AT, issued["access_token_ids"][0], token=LATIN1_TOKEN,
                          token_checksum=sha(LATIN1_TOKEN))
        result = info(target)
        assert result["findings"] == []
        assert result["checksum_checks"][AT] == {"method": "full", "rows_checked": 3, "mismatches": 0}
        set_checksum(target, AT, row_id, sha(LATIN1_TOKEN.encode("utf-8").decode("latin1")))
        result = info(target)
        assert_codes(result, "token_checksum_mismatch")
        assert one(result, "token_checksum_mismatch")["details"]["example_ids"] == [row_id]
    finally:
        server.drop_database(name)


@pytest.mark.parametrize("engine", ENGINES)
def test_sampled_checksum_check(make_db, engine):
    """Above checksum_full_check_limit the comparison samples: method 'sample', at most
    checksum_sample_size rows. With every checksum wrong, every sampled row is a mismatch."""
    target = make_db(engine, "tokens")
    app_id, user_id = target.query("SELECT application_id, user_id FROM %s ORDER BY id" % qi(target, AT))[0]
    data.bulk_insert_access_tokens(target, 195, app_id, user_id, with_checksum=True)
    copy_row(target, AT, ids_and_tokens(target)[0][0], token=NON_ASCII_TOKEN, token_checksum=sha(NON_ASCII_TOKEN))
    opts = dict(checksum_full_check_limit=50, checksum_sample_size=40)

    result = info(target, **opts)
    assert result["findings"] == []
    check = result["checksum_checks"][AT]
    assert check["method"] == "sample"
    assert 0 < check["rows_checked"] <= 40 and check["mismatches"] == 0
    assert result["checksum_checks"][RT]["method"] == "full"  # 5 refresh tokens: under the limit

    # every checksum wrong (distinct values: the unique index stays satisfied)
    with_ids = ids_and_tokens(target)
    assert len(with_ids) == 201
    set_checksums(target, AT, [(row_id, sha(token + "#wrong")) for row_id, token in with_ids])
    result = info(target, **opts)
    assert_codes(result, "token_checksum_mismatch")
    f = one(result, "token_checksum_mismatch")
    assert f["details"]["method"] == "sample"
    assert 0 < f["details"]["rows_checked"] <= 40
    assert f["details"]["rows"] == f["details"]["rows_checked"]
    assert 1 <= len(f["details"]["example_ids"]) <= 5
    assert set(f["details"]["example_ids"]) <= set(i for i, _t in with_ids)
    assert result["checksum_checks"][AT]["method"] == "sample"


# --------------------------------------------------------------------------
# The unique index alone, and the pre-upgrade advice
# --------------------------------------------------------------------------


@pytest.mark.parametrize("engine", ENGINES)
def test_unique_index_missing_alone(make_db, engine):
    """Only the unique index of recorded 0012 is gone; the data is right."""
    target = make_db(engine, "tokens")
    drop_unique(target, AT, ["token_checksum"])
    result = info(target)
    assert_codes(result, "token_checksum_unique_missing", "migration_half_applied")
    unique_0012_missing(result)
    assert result["summary"]["by_severity"]["fatal"] == 2


@pytest.mark.parametrize("engine", ENGINES)
def test_preupgrade_advice_on_big_table_before_0012(make_db, engine):
    """Migrated to 0011 with N access tokens: at preupgrade_min_rows <= N the info finding advises the
    online pre-upgrade; one more and it is not given."""
    target = make_db(engine, "at_0011")
    data.bulk_insert_access_tokens(target, 25, None, None, with_checksum=False)
    result = info(target, preupgrade_min_rows=25)
    assert_codes(result, "token_checksum_preupgrade")
    f = one(result, "token_checksum_preupgrade")
    assert f["severity"] == "info"
    assert f["objects"] == [AT]
    assert f["details"] == {"rows": 25, "migration": M0012}
    assert f["repair"] == "preupgrade_token_checksum"
    assert result["migrations"]["oauth2_provider"]["last_applied"] == M0011
    assert result["checksum_checks"] == {}

    assert info(target, preupgrade_min_rows=26)["findings"] == []
    assert info(target)["findings"] == []  # the default threshold (10000) is far above 25
