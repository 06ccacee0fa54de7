import re
from decimal import Decimal

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.contrib.staticfiles import finders
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from opportunities.models import CustomField, Opportunity, OpportunityHistory, Status, Tag
from pipelines.models import Pipeline, Stage
from tests import factories

pytestmark = pytest.mark.django_db

REGISTERED = sorted(admin.site._registry, key=lambda model: model._meta.label)
# Change forms are checked for the models of this project and of Django's auth.
OWN = [
    model for model in REGISTERED if model._meta.app_label in {"auth", "pipelines", "opportunities"}
]


def admin_url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.fixture
def superuser_client(client):
    client.force_login(factories.admin(username="root"))
    return client


@pytest.fixture
def one_of_each():
    """A row of every registered model, so changelists render real rows."""
    _, stages = factories.pipeline_with_stages()
    opportunity = factories.OpportunityFactory(
        stage=stages[1], status=Status.LOST, assigned_to=factories.rep()
    )
    factories.NoteFactory(opportunity=opportunity)
    factories.TaskFactory(opportunity=opportunity)
    factories.CommunicationFactory(opportunity=opportunity)
    OpportunityHistory.objects.create(
        opportunity=opportunity, from_stage=stages[0], to_stage=stages[1], to_status="open"
    )
    CustomField.objects.create(
        name="Region", key="region", field_type="single_choice", choices=["N"]
    )
    opportunity.tags.add(Tag.objects.create(name="vip"))
    return {model: model._default_manager.order_by("pk").first() for model in OWN}


def pipeline_change_data(pipeline, stages, *, positions=None, delete=(), **fields):
    """What the pipeline change form posts, with its stage inline."""
    data = {
        "name": pipeline.name,
        "position": pipeline.position,
        "stages-TOTAL_FORMS": len(stages),
        "stages-INITIAL_FORMS": len(stages),
        "stages-MIN_NUM_FORMS": 0,
        "stages-MAX_NUM_FORMS": 1000,
        "_save": "Save",
        **fields,
    }
    if pipeline.is_archived:
        data["is_archived"] = "on"
    for index, stage in enumerate(stages):
        prefix = f"stages-{index}-"
        data |= {
            prefix + "id": stage.pk,
            prefix + "pipeline": pipeline.pk,
            prefix + "name": stage.name,
            prefix + "probability": stage.probability or "",
            prefix + "rotting_days": stage.rotting_days or "",
            prefix + "show_in_funnel": "on",
            prefix + "position": positions[index] if positions else stage.position,
        }
        if stage in delete:
            data[prefix + "DELETE"] = "on"
    return data


def messages_of(response):
    return [str(message) for message in response.context["messages"]]


@pytest.mark.parametrize("model", REGISTERED, ids=lambda model: model._meta.label)
def test_changelist_loads_for_superuser(superuser_client, one_of_each, model):
    response = superuser_client.get(admin_url(model, "changelist"))
    assert response.status_code == 200


@pytest.mark.parametrize("model", OWN, ids=lambda model: model._meta.label)
def test_change_form_loads_for_superuser(superuser_client, one_of_each, model):
    response = superuser_client.get(admin_url(model, "change", one_of_each[model].pk))
    assert response.status_code == 200


@pytest.mark.parametrize("model", OWN, ids=lambda model: model._meta.label)
def test_add_form_loads_for_superuser_unless_read_only(superuser_client, model):
    response = superuser_client.get(admin_url(model, "add"))
    # History is written by the services only: its admin has no add form.
    assert response.status_code == (403 if model is OpportunityHistory else 200)


def test_pipeline_change_form_has_sortable_stage_inline(superuser_client):
    pipeline, _ = factories.pipeline_with_stages()
    response = superuser_client.get(admin_url(Pipeline, "change", pipeline.pk))
    html = response.content.decode()
    assert "sortable" in html
    assert "adminsortable2/js/adminsortable2" in html


def test_pipeline_admin_pages_reference_only_existing_static_files(superuser_client):
    # A missing file is a 500 under the production manifest storage.
    pipeline, _ = factories.pipeline_with_stages()
    for url in (admin_url(Pipeline, "changelist"), admin_url(Pipeline, "change", pipeline.pk)):
        html = superuser_client.get(url).content.decode()
        paths = re.findall(r'(?:src|href)="/static/([^"?]+)', html)
        assert "adminsortable2/js/actions-6.0.js" in paths or "admin/js/actions.js" in paths
        assert [path for path in paths if not finders.find(path)] == []


def test_stage_inline_saves_new_order(superuser_client):
    pipeline, stages = factories.pipeline_with_stages()
    # Drag "Negotiation" to the top: the widget rewrites the hidden positions.
    data = pipeline_change_data(pipeline, stages, positions=[2, 3, 4, 1])
    response = superuser_client.post(admin_url(Pipeline, "change", pipeline.pk), data)
    assert response.status_code == 302
    assert list(pipeline.stages.values_list("name", flat=True)) == [
        "Negotiation",
        "Prospecting",
        "Qualification",
        "Proposal",
    ]


def test_stage_inline_appends_new_stage_after_existing_ones(superuser_client):
    pipeline, stages = factories.pipeline_with_stages()
    data = pipeline_change_data(pipeline, stages, positions=[1, 2, 3, 4])
    data |= {"stages-TOTAL_FORMS": 5, "stages-4-name": "Closing", "stages-4-position": ""}
    superuser_client.post(admin_url(Pipeline, "change", pipeline.pk), data)
    assert list(pipeline.stages.values_list("name", flat=True))[-1] == "Closing"


def test_removing_stage_with_opportunities_in_inline_is_refused(superuser_client):
    pipeline, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory(stage=stages[2])
    data = pipeline_change_data(pipeline, stages, delete=[stages[2]])
    response = superuser_client.post(admin_url(Pipeline, "change", pipeline.pk), data)
    assert response.status_code == 200
    assert "“Proposal” of “" in response.content.decode()
    assert "still holds 1 opportunity" in response.content.decode()
    assert pipeline.stages.count() == 4


def test_removing_empty_stage_in_inline_deletes_it(superuser_client):
    pipeline, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory(stage=stages[0])
    data = pipeline_change_data(pipeline, stages, delete=[stages[3]])
    response = superuser_client.post(admin_url(Pipeline, "change", pipeline.pk), data)
    assert response.status_code == 302
    assert not Stage.objects.filter(pk=stages[3].pk).exists()


def test_deleting_stage_with_opportunities_is_refused_with_message(superuser_client):
    _, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory.create_batch(2, stage=stages[0])
    response = superuser_client.post(
        admin_url(Stage, "delete", stages[0].pk), {"post": "yes"}, follow=True
    )
    assert any("still holds 2 opportunities" in text for text in messages_of(response))
    assert Stage.objects.filter(pk=stages[0].pk).exists()
    assert Opportunity.objects.count() == 2


def test_delete_page_of_stage_with_opportunities_redirects_with_message(superuser_client):
    _, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory(stage=stages[0])
    response = superuser_client.get(admin_url(Stage, "delete", stages[0].pk))
    assert response.status_code == 302
    assert response.url == admin_url(Stage, "change", stages[0].pk)


def test_deleting_empty_stage_works(superuser_client):
    _, stages = factories.pipeline_with_stages()
    response = superuser_client.post(admin_url(Stage, "delete", stages[1].pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Stage.objects.filter(pk=stages[1].pk).exists()


def test_deleting_stage_kept_by_history_is_refused(superuser_client):
    _, stages = factories.pipeline_with_stages()
    opportunity = factories.OpportunityFactory(stage=stages[1])
    OpportunityHistory.objects.create(
        opportunity=opportunity, from_stage=stages[0], to_stage=stages[1]
    )
    response = superuser_client.post(
        admin_url(Stage, "delete", stages[0].pk), {"post": "yes"}, follow=True
    )
    assert any("1 opportunity history still refer" in text for text in messages_of(response))
    assert Stage.objects.filter(pk=stages[0].pk).exists()


def test_bulk_delete_of_stages_with_opportunities_is_refused(superuser_client):
    _, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory(stage=stages[3])
    response = superuser_client.post(
        admin_url(Stage, "changelist"),
        {"action": "delete_selected", "_selected_action": [s.pk for s in stages]},
        follow=True,
    )
    assert any("“Negotiation”" in text for text in messages_of(response))
    assert Stage.objects.count() == 4


def test_bulk_delete_of_empty_stages_asks_then_deletes(superuser_client):
    _, stages = factories.pipeline_with_stages()
    selection = {"action": "delete_selected", "_selected_action": [stages[0].pk, stages[1].pk]}
    confirm = superuser_client.post(admin_url(Stage, "changelist"), selection)
    assert confirm.status_code == 200
    assert "Are you sure" in confirm.content.decode()
    superuser_client.post(admin_url(Stage, "changelist"), selection | {"post": "yes"})
    assert Stage.objects.count() == 2


def test_deleting_pipeline_with_opportunities_is_refused(superuser_client):
    pipeline, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory(stage=stages[0])
    response = superuser_client.post(
        admin_url(Pipeline, "delete", pipeline.pk), {"post": "yes"}, follow=True
    )
    assert any("still holds 1 opportunity" in text for text in messages_of(response))
    assert Pipeline.objects.filter(pk=pipeline.pk).exists()
    assert pipeline.stages.count() == 4


def test_bulk_delete_of_pipeline_with_opportunities_is_refused(superuser_client):
    pipeline, stages = factories.pipeline_with_stages()
    empty, _ = factories.pipeline_with_stages()
    factories.OpportunityFactory(stage=stages[0])
    response = superuser_client.post(
        admin_url(Pipeline, "changelist"),
        {"action": "delete_selected", "_selected_action": [pipeline.pk, empty.pk], "post": "yes"},
        follow=True,
    )
    assert any(f"“{pipeline.name}” still holds" in text for text in messages_of(response))
    assert Pipeline.objects.count() == 2


def test_deleting_empty_pipeline_deletes_its_stages(superuser_client):
    pipeline, _ = factories.pipeline_with_stages()
    confirm = superuser_client.get(admin_url(Pipeline, "delete", pipeline.pk))
    assert "Prospecting" in confirm.content.decode()  # the stages are listed as going too
    response = superuser_client.post(admin_url(Pipeline, "delete", pipeline.pk), {"post": "yes"})
    assert response.status_code == 302
    assert not Pipeline.objects.exists()
    assert not Stage.objects.exists()


def test_archive_and_unarchive_actions(superuser_client):
    pipeline, _ = factories.pipeline_with_stages()
    url = admin_url(Pipeline, "changelist")
    superuser_client.post(url, {"action": "archive", "_selected_action": [pipeline.pk]})
    pipeline.refresh_from_db()
    assert pipeline.is_archived
    superuser_client.post(url, {"action": "unarchive", "_selected_action": [pipeline.pk]})
    pipeline.refresh_from_db()
    assert not pipeline.is_archived


def test_pipeline_changelist_shows_counts_in_constant_queries(superuser_client):
    def changelist_queries():
        with CaptureQueriesContext(connection) as queries:
            response = superuser_client.get(admin_url(Pipeline, "changelist"))
        return response, len(queries)

    _, stages = factories.pipeline_with_stages()
    factories.OpportunityFactory.create_batch(3, stage=stages[0])
    _, few = changelist_queries()
    for _ in range(4):
        _, more_stages = factories.pipeline_with_stages()
        factories.OpportunityFactory(stage=more_stages[1])
    response, many = changelist_queries()
    assert many == few
    first = response.context["cl"].result_list.get(pk=stages[0].pipeline_id)
    assert (first._stage_count, first._opportunity_count) == (4, 3)


def test_opportunity_form_rejects_stage_of_another_pipeline(superuser_client):
    pipeline, _ = factories.pipeline_with_stages()
    other, other_stages = factories.pipeline_with_stages(names=["Intro"])
    response = superuser_client.post(
        admin_url(Opportunity, "add"),
        {"name": "Mixed", "pipeline": pipeline.pk, "stage": other_stages[0].pk, "status": "open"}
        | {"value": "10"},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["stage"]
    assert errors == [
        f"The stage “Intro” belongs to the pipeline “{other.name}”, not “{pipeline.name}”. "
        f"Choose one of the stages of “{pipeline.name}”."
    ]
    assert not Opportunity.objects.exists()


def test_opportunity_form_requires_reason_when_lost(superuser_client):
    _, stages = factories.pipeline_with_stages()
    response = superuser_client.post(
        admin_url(Opportunity, "add"),
        {"name": "Gone", "pipeline": stages[0].pipeline_id, "stage": stages[0].pk}
        | {"status": "lost", "value": "10"},
    )
    form = response.context["adminform"].form
    assert form.errors == {"lost_reason": ["Choose why this opportunity was lost."]}


def test_opportunity_added_in_admin_goes_on_top_with_history(superuser_client):
    _, stages = factories.pipeline_with_stages()
    existing = factories.OpportunityFactory(stage=stages[0])
    response = superuser_client.post(
        admin_url(Opportunity, "add"),
        {"name": "Fresh", "pipeline": stages[0].pipeline_id, "stage": stages[0].pk}
        | {"status": "open", "value": "250.00"},
    )
    assert response.status_code == 302
    fresh = Opportunity.objects.get(name="Fresh")
    assert fresh.rank < existing.rank
    assert fresh.value == Decimal("250.00")
    history = fresh.history.get()
    assert (history.to_stage_id, history.to_status) == (stages[0].pk, "open")


def test_status_change_in_admin_stamps_closed_at_and_bumps_version(superuser_client):
    _, stages = factories.pipeline_with_stages()
    opportunity = factories.OpportunityFactory(stage=stages[0], value=100)
    response = superuser_client.post(
        admin_url(Opportunity, "change", opportunity.pk),
        {"name": opportunity.name, "pipeline": opportunity.pipeline_id, "stage": stages[0].pk}
        | {"status": "won", "value": "100", "contact": opportunity.contact_id},
    )
    assert response.status_code == 302
    opportunity.refresh_from_db()
    assert opportunity.closed_at is not None
    assert opportunity.version == 2
    assert opportunity.history.get().to_status == "won"


def test_role_groups_are_listed_in_admin(superuser_client):
    response = superuser_client.get(admin_url(Group, "changelist"))
    assert "Sales rep" in response.content.decode()
    assert "Sales manager" in response.content.decode()
