"""crm/sqlite: each SQL text's "%s" placeholders are converted to "?" once per process.

What callers rely on: queries run with the values bound where Django would bind them,
a literal "%%" stays a percent sign, and "%(name)s" queries still work.
"""

import pytest
from django.db import connection

from crm.sqlite import base as sqlite_base
from opportunities.models import Opportunity
from tests import factories

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "sqlite", reason="the cursor is SQLite's"),
]


def test_a_repeated_query_binds_its_values_each_time():
    sql = "SELECT %s || '%%' || %s"
    with connection.cursor() as cursor:
        assert cursor.execute(sql, ["10", "a"]).fetchone() == ("10%a",)
        assert sqlite_base._qmark_sql[sql] == "SELECT ? || '%' || ?"
        assert cursor.execute(sql, ["20", "b"]).fetchone() == ("20%b",)


def test_named_placeholders_are_converted_each_time():
    with connection.cursor() as cursor:
        cursor.execute("SELECT %(first)s + %(second)s", {"first": 2, "second": 3})
        assert cursor.fetchone() == (5,)
    assert "SELECT %(first)s + %(second)s" not in sqlite_base._qmark_sql


def test_the_orm_reads_through_the_remembered_conversion():
    deal = factories.OpportunityFactory(name="Acme 100% renewal")
    factories.OpportunityFactory(name="Acme 100 renewal")
    for _ in range(2):  # the second read finds its text converted already
        found = Opportunity.objects.filter(name__contains="100%", stage=deal.stage).get()
        assert found.pk == deal.pk


def test_a_full_cache_starts_again(monkeypatch):
    monkeypatch.setattr(sqlite_base, "_QMARK_SQL_MAX", 2)
    monkeypatch.setattr(sqlite_base, "_qmark_sql", {})
    with connection.cursor() as cursor:
        for number in range(5):
            assert cursor.execute(f"SELECT %s + {number}", [1]).fetchone() == (1 + number,)
    assert len(sqlite_base._qmark_sql) <= 2
