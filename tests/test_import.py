"""CSV import: validate every row, preview without writing, then write the good rows."""

from collections import Counter
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext

from opportunities.models import Contact, Opportunity, OpportunityHistory, Status
from opportunities.services import imports
from opportunities.services.imports import (
    ImportChanged,
    ImportFileError,
    import_apply,
    import_plan,
)
from tests import factories

pytestmark = pytest.mark.django_db

IMPORT_URL = "/opportunities/import/"


@pytest.fixture
def sales():
    pipeline, stages = factories.pipeline_with_stages(name="Sales")
    factories.LostReasonFactory(name="Price")
    return pipeline, stages


@pytest.fixture
def importer():
    return factories.manager(username="mia")


def csv_text(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def test_good_file_creates_opportunities_with_defaults(sales, importer):
    pipeline, stages = sales
    text = csv_text(
        "name,contact,contact_email,value,stage,lost_reason",
        "Acme,Ann Acme,ann@acme.test,1200,Proposal,",
        "Globex,,,,,",
        "Initech,,,300,,price",
    )
    result = import_apply(text=text, user=importer)
    assert (result.created, result.updated, result.skipped) == (3, 0, 0)
    acme, globex, initech = Opportunity.objects.order_by("id")
    assert (acme.stage, acme.value, acme.status) == (stages[2], Decimal("1200.00"), Status.OPEN)
    assert acme.contact.email == "ann@acme.test" and acme.contact.name == "Ann Acme"
    assert (globex.pipeline, globex.stage, globex.value) == (pipeline, stages[0], Decimal("0"))
    assert globex.status == Status.OPEN and globex.contact is None
    assert initech.status == Status.LOST and initech.lost_reason.name == "Price"
    assert initech.closed_at is not None


def test_new_opportunities_get_a_history_row_each(sales, importer):
    import_apply(text=csv_text("name,stage", "A,Qualification", "B,"), user=importer)
    rows = OpportunityHistory.objects.order_by("opportunity_id")
    assert [(h.opportunity.name, h.from_stage_id, h.to_stage.name, h.user) for h in rows] == [
        ("A", None, "Qualification", importer),
        ("B", None, "Prospecting", importer),
    ]


def test_new_opportunities_go_below_existing_cards_in_file_order(sales, importer):
    _, stages = sales
    existing = factories.OpportunityFactory(stage=stages[0])
    import_apply(text=csv_text("name", "First", "Second", "Third"), user=importer)
    column = Opportunity.objects.filter(stage=stages[0]).order_by("rank", "id")
    assert [o.name for o in column] == [existing.name, "First", "Second", "Third"]


def test_preview_writes_nothing(sales, importer):
    plan = import_plan(text=csv_text("name,contact_email", "A,new@x.test"), user=importer)
    assert plan.creates == 1
    assert Opportunity.objects.count() == 0
    assert Contact.objects.count() == 0


def test_bad_rows_are_listed_with_line_and_reason(sales, importer):
    factories.PipelineFactory(name="Other")
    text = csv_text(
        "name,pipeline,stage,value,status,lost_reason,owner,contact_email",
        "Fine,,,10,,,,",
        ",,,,,,,",
        "No name here,,,,,,,",
        ",Sales,,5,,,,",
        "Neg,,,-5,,,,",
        "Bad stage,Sales,Nowhere,,,,,",
        "Won but reason,,,,won,Price,,",
        "Lost no reason,,,,lost,,,",
        "Unknown,Nope,,,,,ghost,bad-email",
    )
    plan = import_plan(text=text, user=importer)
    assert plan.creates == 2
    assert [(e.line, e.message) for e in plan.errors] == [
        (5, "name is missing"),
        (6, "value cannot be negative"),
        (7, "there is no stage “Nowhere” in “Sales”"),
        (8, "a lost reason only goes with status Lost"),
        (9, "a lost opportunity needs a lost reason"),
        (
            10,
            "there is no pipeline “Nope”; there is no active user “ghost”; "
            "contact email “bad-email” is not valid",
        ),
    ]


def test_file_with_bad_rows_writes_nothing_until_confirmed(sales, importer, client):
    client.force_login(importer)
    upload = SimpleUploadedFile("deals.csv", b"name,value\nGood,1\nBad,lots\n", "text/csv")
    response = client.post(IMPORT_URL, {"step": "preview", "file": upload})
    html = response.content.decode()
    assert response.status_code == 200
    assert "value “lots” is not a number" in html
    assert '<td class="num">3</td>' in html  # the bad row's line
    assert Opportunity.objects.count() == 0


def test_confirm_imports_the_good_rows_of_the_preview(sales, importer, client):
    client.force_login(importer)
    upload = SimpleUploadedFile("deals.csv", b"name,value\nGood,1\nBad,lots\n", "text/csv")
    preview = client.post(IMPORT_URL, {"step": "preview", "file": upload})
    form = preview.context["confirm"]
    response = client.post(
        IMPORT_URL,
        {
            "step": "confirm",
            "token": form["token"].value(),
            "fingerprint": form["fingerprint"].value(),
        },
    )
    assert response.status_code == 302
    assert list(Opportunity.objects.values_list("name", flat=True)) == ["Good"]


def test_confirm_with_a_tampered_token_writes_nothing(sales, importer, client):
    client.force_login(importer)
    response = client.post(
        IMPORT_URL, {"step": "confirm", "token": "forged:payload", "fingerprint": "1:0:0:"}
    )
    assert response.status_code == 302
    assert Opportunity.objects.count() == 0


def test_apply_refuses_when_the_rows_changed_since_the_preview(sales, importer):
    text = csv_text("name,stage", "A,Proposal")
    plan = import_plan(text=text, user=importer)
    sales[1][2].delete()  # the stage the row names disappears before the confirm
    with pytest.raises(ImportChanged):
        import_apply(text=text, user=importer, expected=plan.fingerprint)
    assert Opportunity.objects.count() == 0


def test_update_by_id_changes_only_the_given_cells(sales, importer):
    _, stages = sales
    opportunity = factories.OpportunityFactory(
        stage=stages[0], name="Acme", value=100, source="Website"
    )
    text = csv_text("id,name,value,stage,source", f"{opportunity.pk},,950,Negotiation,")
    result = import_apply(text=text, user=importer)
    opportunity.refresh_from_db()
    assert (result.created, result.updated) == (0, 1)
    assert (opportunity.name, opportunity.value, opportunity.source) == (
        "Acme",
        Decimal("950.00"),
        "Website",
    )
    assert opportunity.stage == stages[3]
    assert opportunity.version == 2
    history = OpportunityHistory.objects.get(opportunity=opportunity, field="stage")
    assert (history.from_stage, history.to_stage) == (stages[0], stages[3])


def test_update_by_id_to_lost_closes_it(sales, importer):
    opportunity = factories.OpportunityFactory(stage=sales[1][0])
    import_apply(text=csv_text("id,lost_reason", f"{opportunity.pk},Price"), user=importer)
    opportunity.refresh_from_db()
    assert opportunity.status == Status.LOST and opportunity.closed_at is not None
    history = OpportunityHistory.objects.get(opportunity=opportunity, field="status")
    assert history.to_status == Status.LOST


def test_update_matches_contact_email_and_name_without_id(sales, importer):
    contact = factories.ContactFactory(email="Bob@Example.test")
    opportunity = factories.OpportunityFactory(stage=sales[1][0], name="Renewal", contact=contact)
    result = import_apply(
        text=csv_text("name,contact_email,value", "renewal,bob@example.test,42"), user=importer
    )
    opportunity.refresh_from_db()
    assert (result.created, result.updated) == (0, 1)
    assert opportunity.value == Decimal("42.00")


def test_unchanged_rows_are_not_written(sales, importer):
    opportunity = factories.OpportunityFactory(stage=sales[1][0], value=10)
    result = import_apply(text=csv_text("id,value", f"{opportunity.pk},10"), user=importer)
    opportunity.refresh_from_db()
    assert (result.updated, result.unchanged, opportunity.version) == (0, 1, 1)


def test_user_cannot_update_opportunities_they_cannot_see(sales):
    rep = factories.rep()
    rep.user_permissions.add(Permission.objects.get(codename="import_opportunities"))
    hidden = factories.OpportunityFactory(stage=sales[1][0], value=10)
    plan = import_plan(text=csv_text("id,value", f"{hidden.pk},99"), user=rep)
    assert [e.message for e in plan.errors] == [
        f"there is no opportunity #{hidden.pk} that you can see"
    ]
    import_apply(text=csv_text("id,value", f"{hidden.pk},99"), user=rep)
    hidden.refresh_from_db()
    assert hidden.value == Decimal("10.00")


def test_the_same_opportunity_twice_is_refused_on_the_second_line(sales, importer):
    opportunity = factories.OpportunityFactory(stage=sales[1][0])
    plan = import_plan(
        text=csv_text("id,value", f"{opportunity.pk},1", f"{opportunity.pk},2"), user=importer
    )
    assert [(e.line, e.message) for e in plan.errors] == [
        (3, "the same opportunity is already on line 2")
    ]


def test_a_refused_duplicate_row_leaves_the_first_rows_changes_alone(sales, importer):
    opportunity = factories.OpportunityFactory(stage=sales[1][0], name="Original", value=1)
    text = csv_text("id,name,value", f"{opportunity.pk},First,10", f"{opportunity.pk},Second,20")
    import_apply(text=text, user=importer)
    opportunity.refresh_from_db()
    assert (opportunity.name, opportunity.value) == ("First", Decimal("10.00"))


def test_stage_must_belong_to_the_rows_pipeline(sales, importer):
    factories.pipeline_with_stages(("Intro", "Signed"), name="Partners")
    plan = import_plan(text=csv_text("name,pipeline,stage", "X,Partners,Proposal"), user=importer)
    assert plan.errors[0].message == "there is no stage “Proposal” in “Partners”"


def test_changing_pipeline_without_stage_moves_to_its_first_stage(sales, importer):
    _, partner_stages = factories.pipeline_with_stages(("Intro", "Signed"), name="Partners")
    opportunity = factories.OpportunityFactory(stage=sales[1][2])
    import_apply(text=csv_text("id,pipeline", f"{opportunity.pk},Partners"), user=importer)
    opportunity.refresh_from_db()
    assert opportunity.stage == partner_stages[0]


def test_rows_sharing_a_new_contact_email_share_one_contact(sales, importer):
    import_apply(
        text=csv_text("name,contact_email", "A,same@x.test", "B,same@x.test"), user=importer
    )
    assert Contact.objects.count() == 1
    assert Opportunity.objects.filter(contact__email="same@x.test").count() == 2


def test_line_numbers_count_blank_lines_and_multiline_cells(sales, importer):
    text = 'name,value\n"Two\nlines",1\n\nBad,x\n'
    plan = import_plan(text=text, user=importer)
    assert [(e.line, e.name) for e in plan.errors] == [(5, "Bad")]


def test_exported_file_imports_back_unchanged(sales, importer, client):
    factories.OpportunityFactory.create_batch(3, stage=sales[1][1], assigned_to=importer)
    client.force_login(importer)
    exported = b"".join(client.get("/opportunities/export.csv").streaming_content).decode()
    plan = import_plan(text=exported, user=importer)
    assert (plan.creates, plan.updates, plan.unchanged, plan.errors) == (0, 0, 3, [])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The file is empty"),
        ("value,stage\n1,Lead\n", "needs a “name” column"),
        ("name\nA,extra,cells\n", "more cells than the header"),
    ],
)
def test_unreadable_files_are_refused_as_a_whole(sales, importer, text, message):
    with pytest.raises(ImportFileError, match=message):
        import_plan(text=text, user=importer)


def _statements(queries) -> Counter:
    kinds = Counter()
    for query in queries:
        verb = query["sql"].lstrip().split(None, 1)[0].upper()
        kinds["savepoint" if verb in ("SAVEPOINT", "RELEASE", "ROLLBACK") else verb] += 1
    return kinds


@pytest.mark.slow  # a few seconds: 10,000 rows through the whole import
def test_ten_thousand_rows_import_with_bounded_queries_in_chunks(sales, importer):
    lines = ["name,contact_email,value,stage,status,lost_reason"]
    for index in range(10_000):
        status = ("", "won", "", "lost")[index % 4]
        reason = "Price" if status == "lost" else ""
        lines.append(f"Deal {index},c{index % 2500}@bulk.test,{index},Proposal,{status},{reason}")
    text = csv_text(*lines)
    with CaptureQueriesContext(connection) as queries:
        result = import_apply(text=text, user=importer)
    kinds = _statements(queries)
    # Lookups: a fixed few for the whole file, three per 1,000-row chunk; never one per row.
    assert kinds["SELECT"] <= 60, kinds
    # Bulk writes: a few statements per 1,000-row chunk (contacts, opportunities, history
    # and events in batches of 500).
    assert kinds["INSERT"] + kinds["UPDATE"] <= 10 * 8, kinds
    assert result.created == 10_000
    assert Opportunity.objects.filter(stage=sales[1][2]).count() == 10_000
    assert Contact.objects.count() == 2500
    assert OpportunityHistory.objects.count() == 10_000
    assert Opportunity.objects.filter(status=Status.LOST, lost_reason__isnull=False).count() == 2500
    column = Opportunity.objects.filter(stage=sales[1][2]).order_by("rank", "id")
    assert [o.name for o in column[:2]] == ["Deal 0", "Deal 1"]
    assert column.last().name == "Deal 9999"


def test_cr_only_line_endings_are_read_as_lines(sales, importer):
    plan = import_plan(text="name,value\rA,1\rB,x\r", user=importer)
    assert plan.creates == 1
    assert [(e.line, e.name) for e in plan.errors] == [(3, "B")]


def test_cr_only_upload_previews_without_a_server_error(sales, importer, client):
    client.force_login(importer)
    upload = SimpleUploadedFile("mac.csv", b"name,value\rA,1\rB,2\r", "text/csv")
    response = client.post(IMPORT_URL, {"step": "preview", "file": upload})
    assert response.status_code == 200
    assert response.context["plan"].creates == 2


def test_row_cap_stops_reading_at_the_first_row_over_it(sales, importer, monkeypatch):
    monkeypatch.setattr(imports, "MAX_ROWS", 3)
    # Line 6 is malformed: a parse that read the whole file would complain about it first.
    text = csv_text("name", "A", "B", "C", "D", "E,too,many")
    with pytest.raises(ImportFileError, match="more than 3 rows"):
        import_plan(text=text, user=importer)


def test_formula_prefixes_have_one_definition_shared_with_the_export():
    from opportunities import exports

    assert imports.FORMULA_STARTS is exports.FORMULA_STARTS
