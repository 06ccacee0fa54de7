"""CSV export of custom fields and tags: a column each, one query whatever the size,
and the cells read back by the same parsers the import, the form and the API use."""

import csv
import io
from datetime import date
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from opportunities.custom_fields import columns_for, parse_value, value_of
from opportunities.exports import csv_lines, export_custom_fields
from opportunities.models import CustomField, CustomFieldType, CustomFieldValue, Opportunity
from opportunities.services.related import clean_tag_names, opportunity_set_tags
from tests import factories

pytestmark = pytest.mark.django_db

EXPORT_URL = "/opportunities/export.csv"

VALUES = {
    "budget": (CustomFieldType.MONEY, [], Decimal("1234.50")),
    "seats": (CustomFieldType.NUMBER, [], Decimal("12.5")),
    "start": (CustomFieldType.DATE, [], date(2026, 12, 31)),
    "region": (CustomFieldType.SINGLE_CHOICE, ["North", "South"], "South"),
    "topics": (CustomFieldType.MULTIPLE_CHOICE, ["Cloud", "Edge"], ["Cloud", "Edge"]),
    "signed": (CustomFieldType.CHECKBOX, [], True),
    "note": (CustomFieldType.TEXT, [], "=1+1 is a formula"),
    "site": (CustomFieldType.URL, [], "https://example.com/a"),
}


def read_csv(response) -> list[dict]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


@pytest.fixture
def fields():
    made = {}
    for position, (key, (kind, choices, _)) in enumerate(VALUES.items()):
        made[key] = CustomField.objects.create(
            name=key.title(), key=key, field_type=kind, choices=choices, position=position
        )
    return made


def _give_values(opportunity, fields):
    for key, field in fields.items():
        CustomFieldValue.objects.create(
            opportunity=opportunity, field=field, **columns_for(field, VALUES[key][2])
        )


def test_export_has_a_column_per_active_field_and_tags(fields, client):
    CustomField.objects.filter(key="site").update(is_active=False)
    factories.OpportunityFactory()
    client.force_login(factories.manager())
    body = b"".join(client.get(EXPORT_URL).streaming_content).decode()
    header = body.splitlines()[0].split(",")
    assert header[-8:] == ["tags", "budget", "seats", "start", "region", "topics", "signed", "note"]


def test_exported_custom_values_and_tags_read_back_the_same(fields, client):
    manager = factories.manager()
    deal = factories.OpportunityFactory()
    _give_values(deal, fields)
    opportunity_set_tags(opportunity=deal, user=manager, names=["VIP", "partner"])
    client.force_login(manager)
    (row,) = read_csv(client.get(EXPORT_URL))
    assert row["tags"] == "partner; VIP"
    assert clean_tag_names(row["tags"].split(";")) == ["partner", "VIP"]
    assert row["budget"] == "1234.50"
    assert row["seats"] == "12.5"
    assert row["signed"] == "yes"
    assert row["note"] == "'=1+1 is a formula"
    for key, field in fields.items():
        cell = row[key]
        if cell.startswith("'="):
            cell = cell[1:]
        stored = CustomFieldValue.objects.select_related("field").get(opportunity=deal, field=field)
        assert parse_value(field, cell) == value_of(stored), key


def test_deal_without_values_exports_empty_cells(fields, client):
    factories.OpportunityFactory()
    client.force_login(factories.manager())
    (row,) = read_csv(client.get(EXPORT_URL))
    assert all(row[key] == "" for key in fields)
    assert row["tags"] == ""


def test_export_reads_rows_tags_and_values_in_one_query_whatever_the_size(fields):
    manager = factories.manager()
    for count in (2, 12):
        while Opportunity.objects.count() < count:
            deal = factories.OpportunityFactory()
            _give_values(deal, fields)
            opportunity_set_tags(opportunity=deal, user=manager, names=["a", "b"])
        custom = export_custom_fields()
        lines = csv_lines(Opportunity.objects.all(), custom)
        with CaptureQueriesContext(connection) as queries:
            assert "".join(lines).count("\n") == count + 1
        assert len(queries) == 1
