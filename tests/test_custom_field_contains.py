"""Custom field "contains": what it matches (case, % and _, long text) and the index
that serves it (migration 0012, custom_value_text)."""

import pytest
from django.db import connection

from opportunities.custom_fields import columns_for
from opportunities.filters_fields import custom_field_condition
from opportunities.models import CustomField, CustomFieldType, CustomFieldValue, Opportunity
from tests import factories

pytestmark = pytest.mark.django_db

LIST_URL = "/opportunities/"


@pytest.fixture
def deals():
    _, stages = factories.pipeline_with_stages()
    note = CustomField.objects.create(name="Note", key="note", field_type=CustomFieldType.TEXT)
    story = CustomField.objects.create(
        name="Story", key="story", field_type=CustomFieldType.LONG_TEXT
    )
    other = CustomField.objects.create(name="Other", key="other", field_type=CustomFieldType.TEXT)
    texts = {
        "Percent": "Discount 50% off",
        "Fifty": "Discount 500 off",
        "Under": "snake_case name",
        "Space": "snake case name",
        "Upper": "BANKING group",
        "Lower": "investment banking",
        "Empty": None,
    }
    made = {}
    for name, text in texts.items():
        deal = factories.OpportunityFactory(name=name, stage=stages[0])
        if text is not None:
            CustomFieldValue.objects.create(opportunity=deal, field=note, **columns_for(note, text))
        made[name] = deal
    # The same words in another field must not match a filter on "note".
    CustomFieldValue.objects.create(
        opportunity=made["Empty"], field=other, **columns_for(other, "banking 50% snake_case")
    )
    long = factories.OpportunityFactory(name="Long", stage=stages[0])
    CustomFieldValue.objects.create(
        opportunity=long, field=story, **columns_for(story, "x" * 9000 + " Needle at the end")
    )
    made["Long"] = long
    return made


def _matches(field_key: str, value: str) -> set[str]:
    field = CustomField.objects.get(key=field_key)
    condition = custom_field_condition(field, value)
    return set(Opportunity.objects.filter(condition).values_list("name", flat=True))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bank", {"Upper", "Lower"}),
        ("BANK", {"Upper", "Lower"}),
        ("BaNkInG G", {"Upper"}),
        ("50%", {"Percent"}),  # % is the character, not "anything"
        ("%", {"Percent"}),
        ("snake_case", {"Under"}),  # _ is the character, not "any one character"
        ("_", {"Under"}),
        ("discount 50", {"Percent", "Fifty"}),
        ("nothing like it", set()),
    ],
)
def test_contains_is_case_insensitive_and_literal(deals, value, expected):
    assert _matches("note", value) == expected


def test_contains_finds_the_end_of_a_long_text(deals):
    assert _matches("story", "needle AT the end") == {"Long"}


def test_the_list_shows_the_same_matches(deals, client):
    client.force_login(factories.manager())
    response = client.get(LIST_URL, {"cf": "note", "cf_value": "SNAKE_"})
    assert response.status_code == 200
    assert {row.name for row in response.context["page"].object_list} == {"Under"}
    assert response.context["filter"].form["cf_value"].value() == "SNAKE_"


def test_a_long_text_value_can_be_written_with_the_index(deals):
    # A b-tree holding the text would refuse rows past ~2.7 KB on PostgreSQL.
    story = CustomField.objects.get(key="story")
    deal = deals["Fifty"]
    CustomFieldValue.objects.create(
        opportunity=deal, field=story, **columns_for(story, "y" * 10_000)
    )
    assert _matches("story", "yyyy") == {"Fifty"}


def _plan(sql: str, params) -> str:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN QUERY PLAN " + sql, params)
        return " ".join(str(row[-1]) for row in cursor.fetchall())


@pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite's plan")
def test_sqlite_reads_contains_from_the_covering_index(deals):
    field = CustomField.objects.get(key="note")
    values = (
        CustomFieldValue.objects.filter(field=field, text__icontains="bank")
        .exclude(text="")
        .values("opportunity_id")
    )
    sql, params = values.query.sql_with_params()
    assert "COVERING INDEX custom_value_text" in _plan(sql, params)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's index")
def test_postgresql_has_the_trigram_index_or_the_btree_fallback():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        trigram = cursor.fetchone() is not None
        cursor.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'custom_value_text'")
        (definition,) = cursor.fetchone()
    if trigram:
        assert "gin" in definition and "gin_trgm_ops" in definition
    else:
        assert "btree" in definition and "<> ''" in definition


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's index")
@pytest.mark.parametrize("where", ["custom_value_text", None])
def test_postgresql_matches_the_same_with_the_fallback_or_no_index(deals, where):
    # As on a server where pg_trgm could not be created (DDL rolls back with the test).
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # DDL waits for no deferred check
        cursor.execute("DROP INDEX custom_value_text")
        if where:
            cursor.execute(
                f"CREATE INDEX {where} ON opportunities_customfieldvalue "
                "(field_id, opportunity_id) WHERE text <> ''"
            )
    assert _matches("note", "BANK") == {"Upper", "Lower"}
    assert _matches("note", "50%") == {"Percent"}
    assert _matches("note", "snake_") == {"Under"}
    assert _matches("story", "needle at") == {"Long"}
