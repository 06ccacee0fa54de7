"""Import as HighLevel users prepare files: their headers and formats, custom fields, tags,
followers, and the mapping step (columns → fields, create/update, empty cells)."""

from datetime import date
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from imports_log.models import ImportRun
from opportunities.models import CustomField, CustomFieldValue, Opportunity, OpportunityHistory
from opportunities.services.imports import ImportOptions, import_apply, import_plan
from tests import factories

pytestmark = pytest.mark.django_db

IMPORT_URL = "/opportunities/import/"

HIGHLEVEL_FILE = (
    "Opportunity Name,Pipeline Name,Stage Name,Lead Value,Opportunity Owner,Followers,"
    "Company Name,Contact Name,Contact Email,Contact Phone,Tags,Expected Close Date,Region\n"
    'Acme renewal,Sales,Proposal,"$1,234.50",Ann Owner,"Bob Follower, carl@crm.test",'
    'Acme Inc,Ann Acme,ann@acme.test,+1 555 0100,"vip, renewal",12/31/2026,North\n'
    'Globex,Sales,Qualification,"2,000",bob,,Globex,Gus Globex,gus@globex.test,,hot; q4,'
    "2026-11-15,South\n"
)


@pytest.fixture
def sales():
    pipeline, stages = factories.pipeline_with_stages(name="Sales")
    factories.LostReasonFactory(name="Price")
    return pipeline, stages


@pytest.fixture
def importer():
    return factories.manager(username="mia")


@pytest.fixture
def people():
    ann = factories.rep(username="ann", first_name="Ann", last_name="Owner")
    bob = factories.rep(username="bob", first_name="Bob", last_name="Follower")
    carl = factories.rep(username="carl", email="carl@crm.test")
    return ann, bob, carl


@pytest.fixture
def region():
    return CustomField.objects.create(
        name="Region", key="region", field_type="single_choice", choices=["North", "South"]
    )


def test_highlevel_file_imports_every_column_and_value(sales, importer, people, region):
    ann, bob, carl = people
    plan = import_plan(text=HIGHLEVEL_FILE, user=importer)
    assert plan.errors == [] and plan.ignored_columns == []
    result = import_apply(text=HIGHLEVEL_FILE, user=importer)
    assert (result.created, result.skipped) == (2, 0)
    acme = Opportunity.objects.get(name="Acme renewal")
    assert (acme.pipeline.name, acme.stage.name) == ("Sales", "Proposal")
    assert acme.value == Decimal("1234.50") and acme.assigned_to == ann
    assert set(acme.followers.all()) == {bob, carl}
    assert (acme.contact.name, acme.contact.email) == ("Ann Acme", "ann@acme.test")
    assert (acme.contact.phone, acme.contact.company) == ("+1 555 0100", "Acme Inc")
    assert sorted(tag.name for tag in acme.tags.all()) == ["renewal", "vip"]
    assert acme.expected_close_date == date(2026, 12, 31)
    assert CustomFieldValue.objects.get(opportunity=acme, field=region).text == "North"
    globex = Opportunity.objects.get(name="Globex")
    assert globex.value == Decimal("2000.00") and globex.assigned_to == bob
    assert sorted(tag.name for tag in globex.tags.all()) == ["hot", "q4"]
    assert globex.expected_close_date == date(2026, 11, 15)
    assert CustomFieldValue.objects.get(opportunity=globex, field=region).text == "South"


def test_pipeline_and_stage_by_id(sales, importer):
    pipeline, stages = sales
    text = f"Opportunity Name,Pipeline ID,Stage ID\nDeal,{pipeline.pk},{stages[1].pk}\n"
    import_apply(text=text, user=importer)
    assert Opportunity.objects.get().stage == stages[1]


def test_custom_field_by_key_and_bad_value_is_a_row_error(sales, importer):
    CustomField.objects.create(name="Budget", key="budget", field_type="number")
    plan = import_plan(text='name,budget\nA,"1,500"\nB,lots\n', user=importer)
    assert [error.line for error in plan.errors] == [3]
    assert "Budget" in plan.errors[0].message
    import_apply(text='name,budget\nA,"1,500"\n', user=importer)
    assert CustomFieldValue.objects.get().number == Decimal("1500")


def test_update_records_custom_tags_and_followers_in_history(sales, importer, people, region):
    _, bob, _ = people
    deal = factories.OpportunityFactory(pipeline=sales[0], stage=sales[1][0], name="Deal")
    text = f"id,Region,Tags,Followers\n{deal.pk},South,vip,Bob Follower\n"
    result = import_apply(text=text, user=importer)
    assert result.updated == 1
    deal.refresh_from_db()
    assert [t.name for t in deal.tags.all()] == ["vip"] and list(deal.followers.all()) == [bob]
    fields = set(
        OpportunityHistory.objects.filter(opportunity=deal).values_list("field", flat=True)
    )
    assert {"custom_field", "tags", "followers"} <= fields


def test_eleventh_follower_is_a_row_error(sales, importer):
    users = [factories.rep(username=f"u{i}") for i in range(11)]
    names = ", ".join(user.username for user in users)
    plan = import_plan(text=f'name,followers\nA,"{names}"\n', user=importer)
    assert "10 followers" in plan.errors[0].message


def test_tag_with_markup_is_a_row_error(sales, importer):
    plan = import_plan(text='name,tags\nA,"<b>x</b>"\n', user=importer)
    assert plan.errors and "tag" in plan.errors[0].message


def test_mapping_renames_and_drops_columns(sales, importer):
    text = "Deal title,Amount paid,Notes\nA,100,skip me\n"
    options = ImportOptions(mapping={"0": "name", "1": "value", "2": ""})
    import_apply(text=text, user=importer, options=options)
    assert Opportunity.objects.get().value == Decimal("100.00")


def test_create_mode_refuses_rows_that_match(sales, importer):
    deal = factories.OpportunityFactory(pipeline=sales[0], stage=sales[1][0])
    plan = import_plan(
        text=f"id,name\n{deal.pk},X\n,New\n", user=importer, options=ImportOptions(mode="create")
    )
    assert [error.line for error in plan.errors] == [2] and plan.creates == 1


def test_update_mode_refuses_rows_that_match_nothing(sales, importer):
    plan = import_plan(text="name\nNew\n", user=importer, options=ImportOptions(mode="update"))
    assert plan.errors and plan.creates == 0


def test_empty_cell_clears_when_overwriting_is_allowed(sales, importer):
    deal = factories.OpportunityFactory(pipeline=sales[0], stage=sales[1][0], source="web")
    text = f"id,source\n{deal.pk},\n"
    import_apply(text=text, user=importer)
    deal.refresh_from_db()
    assert deal.source == "web"
    import_apply(text=text, user=importer, options=ImportOptions(keep_when_empty=False))
    deal.refresh_from_db()
    assert deal.source == ""


def test_preview_shows_each_column_with_a_suggested_field(sales, importer, region, client):
    client.force_login(importer)
    upload = SimpleUploadedFile("hl.csv", HIGHLEVEL_FILE.encode(), content_type="text/csv")
    response = client.post(IMPORT_URL, {"file": upload})
    html = response.content.decode()
    assert response.status_code == 200
    assert '<option value="value" selected>' in html
    assert '<option value="custom:region" selected>' in html
    assert "Don’t import" in html and "Create and update" in html


def test_remap_is_stored_on_the_run_and_the_confirm_uses_it(sales, importer, client):
    client.force_login(importer)
    upload = SimpleUploadedFile("x.csv", b"Deal title,Amount paid\nA,100\n")
    response = client.post(IMPORT_URL, {"file": upload})
    token = response.context["confirm"].initial["token"]
    response = client.post(
        IMPORT_URL,
        {
            "step": "map",
            "token": token,
            "col_0": "name",
            "col_1": "value",
            "mode": "both",
            "keep_when_empty": "on",
        },
    )
    assert response.status_code == 200
    run = ImportRun.objects.get()
    assert run.options["mapping"] == {"0": "name", "1": "value"}
    confirm = response.context["confirm"].initial
    client.post(IMPORT_URL, {"step": "confirm", **confirm})
    assert Opportunity.objects.get().value == Decimal("100.00")


def test_file_without_a_recognised_name_column_goes_to_the_mapping_step(sales, importer, client):
    client.force_login(importer)
    upload = SimpleUploadedFile("x.csv", b"Deal title,Amount paid\nA,100\n")
    response = client.post(IMPORT_URL, {"file": upload})
    html = response.content.decode()
    assert "needs a “name” column" in html and 'name="col_0"' in html
    assert Opportunity.objects.count() == 0


def test_a_confirmed_run_cannot_be_remapped(sales, importer, client):
    client.force_login(importer)
    upload = SimpleUploadedFile("x.csv", b"name,value\nA,100\n")
    confirm = client.post(IMPORT_URL, {"file": upload}).context["confirm"].initial
    client.post(IMPORT_URL, {"step": "confirm", **confirm})
    mapping = {"step": "map", "token": confirm["token"], "col_0": "name", "mode": "both"}
    response = client.post(IMPORT_URL, mapping)
    assert response.status_code == 302
    assert ImportRun.objects.get().options["mapping"] is None


def test_a_forged_mapping_target_is_not_imported(sales, importer):
    options = ImportOptions(mapping={"0": "name", "1": "version"})
    plan = import_plan(text="name,value\nA,100\n", user=importer, options=options)
    assert plan.columns == [("name", "name"), ("value", "")]


def test_related_columns_keep_the_queries_per_chunk_bounded(sales, importer, people, region):
    lines = ["name,contact_email,tags,followers,region"]
    for index in range(3000):
        lines.append(f'Deal {index},c{index}@bulk.test,"t{index % 5}, vip",bob,North')
    with CaptureQueriesContext(connection) as queries:
        result = import_apply(text="\n".join(lines) + "\n", user=importer)
    selects = sum(1 for q in queries if q["sql"].lstrip().upper().startswith("SELECT"))
    assert result.created == 3000 and selects <= 40, selects
    assert CustomFieldValue.objects.count() == 3000
    assert Opportunity.tags.through.objects.count() == 6000
