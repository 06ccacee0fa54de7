"""Required custom fields on import: a new deal needs them (column missing, unmapped or
empty cell: refused row by row, shown in the preview); updates only need what they touch."""

from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from opportunities.custom_fields import columns_for
from opportunities.models import CustomField, CustomFieldValue, Opportunity
from opportunities.services.imports import ImportOptions, import_apply, import_plan
from tests import factories

pytestmark = pytest.mark.django_db

IMPORT_URL = "/opportunities/import/"


@pytest.fixture
def sales():
    return factories.pipeline_with_stages(name="Sales")


@pytest.fixture
def importer():
    return factories.manager(username="mia")


@pytest.fixture
def budget():
    return CustomField.objects.create(
        name="Budget", key="budget", field_type="money", required=True
    )


def _reasons(plan) -> dict[int, str]:
    return {error.line: error.message for error in plan.errors}


def test_new_deal_without_the_column_is_refused(sales, importer, budget):
    plan = import_plan(text="name,value\nA,10\nB,20\n", user=importer)
    assert plan.creates == 0
    assert _reasons(plan) == {2: "“Budget” is required", 3: "“Budget” is required"}
    result = import_apply(text="name,value\nA,10\nB,20\n", user=importer)
    assert result.created == 0
    assert not Opportunity.objects.exists()


def test_new_deal_with_an_empty_cell_is_refused_the_others_import(sales, importer, budget):
    text = "name,budget\nA,1500\nB,\nC,$20\n"
    plan = import_plan(text=text, user=importer)
    assert plan.creates == 2
    assert _reasons(plan) == {3: "“Budget” is required"}
    import_apply(text=text, user=importer)
    assert sorted(Opportunity.objects.values_list("name", flat=True)) == ["A", "C"]
    assert sorted(CustomFieldValue.objects.values_list("number", flat=True)) == [
        Decimal("20"),
        Decimal("1500"),
    ]


def test_a_bad_value_gets_its_own_message_not_required_too(sales, importer, budget):
    plan = import_plan(text="name,budget\nA,lots\n", user=importer)
    assert _reasons(plan) == {2: "Budget: enter a number."}


def test_a_column_mapped_to_dont_import_does_not_satisfy_it(sales, importer, budget):
    options = ImportOptions(mapping={"0": "name", "1": ""})
    plan = import_plan(text="name,budget\nA,1500\n", user=importer, options=options)
    assert _reasons(plan) == {2: "“Budget” is required"}


def test_a_field_of_another_pipeline_is_not_required_here(sales, importer, budget):
    other, _ = factories.pipeline_with_stages(name="Partners")
    budget.pipelines.set([other])
    plan = import_plan(text="name,pipeline\nA,Sales\nB,Partners\n", user=importer)
    assert plan.creates == 1
    assert _reasons(plan) == {3: "“Budget” is required"}


def test_inactive_or_optional_fields_are_not_required(sales, importer, budget):
    budget.is_active = False
    budget.save()
    CustomField.objects.create(name="Region", key="region", field_type="text")
    assert import_plan(text="name\nA\n", user=importer).errors == []


def test_updates_that_do_not_touch_the_field_are_fine(sales, importer, budget):
    pipeline, stages = sales
    deal = factories.OpportunityFactory(pipeline=pipeline, stage=stages[0], name="Old")
    plan = import_plan(text=f"id,value\n{deal.pk},99\n", user=importer)
    assert plan.errors == [] and plan.updates == 1
    # An empty cell kept as it is (the default) is no change either.
    plan = import_plan(text=f"id,budget,value\n{deal.pk},,98\n", user=importer)
    assert plan.errors == [] and plan.updates == 1


def test_an_update_cannot_empty_a_required_field(sales, importer, budget):
    pipeline, stages = sales
    deal = factories.OpportunityFactory(pipeline=pipeline, stage=stages[0])
    CustomFieldValue.objects.create(
        opportunity=deal, field=budget, **columns_for(budget, Decimal("5"))
    )
    options = ImportOptions(keep_when_empty=False)
    plan = import_plan(text=f"id,budget\n{deal.pk},\n", user=importer, options=options)
    assert [error.line for error in plan.errors] == [2]
    assert "Budget is required" in plan.errors[0].message


def test_the_preview_shows_the_refused_rows(sales, importer, budget, client):
    client.force_login(importer)
    upload = SimpleUploadedFile("x.csv", b"name,value\nA,10\n", content_type="text/csv")
    response = client.post(IMPORT_URL, {"file": upload})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Rows that will be skipped" in html
    assert "“Budget” is required" in html
    assert not Opportunity.objects.exists()
