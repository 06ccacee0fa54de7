"""Confirmed imports: once per preview, in chunks with progress, rank keys kept short."""

import pytest
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import SimpleUploadedFile

from imports_log.models import ImportRun
from opportunities import ranking
from opportunities.models import Opportunity, OpportunityEvent, OpportunityHistory
from opportunities.services import imports
from opportunities.services.imports import import_apply, keys_after
from opportunities.views import manager
from tests import factories

pytestmark = pytest.mark.django_db

IMPORT_URL = "/opportunities/import/"


@pytest.fixture
def stages():
    return factories.pipeline_with_stages(name="Sales")[1]


@pytest.fixture
def importer():
    return factories.manager(username="mia")


def preview(client, content: bytes) -> dict:
    upload = SimpleUploadedFile("deals.csv", content, "text/csv")
    form = client.post(IMPORT_URL, {"step": "preview", "file": upload}).context["confirm"]
    return {
        "step": "confirm",
        "token": form["token"].value(),
        "fingerprint": form["fingerprint"].value(),
    }


def many_rows(count: int) -> bytes:
    return ("name\n" + "".join(f"Deal {index}\n" for index in range(count))).encode()


def test_three_confirms_of_one_preview_import_one_copy(stages, importer, client):
    client.force_login(importer)
    confirm = preview(client, b"name,value\nA,1\nB,2\n")
    statuses = [client.post(IMPORT_URL, confirm).status_code for _ in range(3)]
    assert statuses == [302, 302, 302]
    assert sorted(Opportunity.objects.values_list("name", flat=True)) == ["A", "B"]


def test_a_second_confirm_says_the_import_already_ran(stages, importer, client):
    client.force_login(importer)
    confirm = preview(client, b"name\nA\n")
    client.post(IMPORT_URL, confirm)
    response = client.post(IMPORT_URL, confirm, follow=True)
    assert "already confirmed" in response.content.decode()


def test_the_confirm_carries_a_short_token_not_the_file(stages, importer, client):
    client.force_login(importer)
    confirm = preview(client, many_rows(3000))
    assert len(confirm["token"]) < 200


def test_another_users_preview_cannot_be_confirmed(stages, importer, client):
    client.force_login(importer)
    confirm = preview(client, b"name\nA\n")
    client.force_login(factories.manager(username="other"))
    client.post(IMPORT_URL, confirm)
    assert not Opportunity.objects.exists()


def test_a_big_import_goes_on_from_its_progress_page(stages, importer, client, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_SIZE", 10)
    monkeypatch.setattr(manager, "IMPORT_STEP_SECONDS", 0)  # one chunk per request
    client.force_login(importer)
    response = client.post(IMPORT_URL, preview(client, many_rows(35)))
    run = ImportRun.objects.get()
    assert response.url == f"/opportunities/import/{run.pk}/"
    assert Opportunity.objects.count() == 10

    page = client.get(response.url).content.decode()
    assert 'max="35" value="10"' in page and 'hx-trigger="load' in page
    step = client.post(response.url, headers={"HX-Request": "true"})
    assert 'value="20"' in step.content.decode()
    assert Opportunity.objects.count() == 20

    # Without JavaScript, "Continue" writes what is left.
    done = client.post(response.url)
    assert done.status_code == 302
    assert Opportunity.objects.count() == 35
    names = Opportunity.objects.order_by("rank", "id").values_list("name", flat=True)
    assert list(names) == [f"Deal {index}" for index in range(35)]
    run.refresh_from_db()
    assert (run.rows_done, run.created, run.finished_at is not None) == (35, 35, True)


def test_someone_elses_import_progress_is_not_found(stages, importer, client, monkeypatch):
    monkeypatch.setattr(imports, "BATCH_SIZE", 10)
    monkeypatch.setattr(manager, "IMPORT_STEP_SECONDS", 0)
    client.force_login(importer)
    url = client.post(IMPORT_URL, preview(client, many_rows(25))).url
    client.force_login(factories.manager(username="other"))
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert Opportunity.objects.count() == 10


def test_two_requests_continuing_one_import_write_each_chunk_once(stages, importer, client):
    client.force_login(importer)
    run, _ = None, None
    plan, run = imports.import_prepare(text=many_rows(30).decode(), filename="d.csv", user=importer)
    run = imports.import_confirm(run_id=run.pk, user=importer, fingerprint=plan.fingerprint)
    stale = ImportRun.objects.get(pk=run.pk)  # what a second request read at the same time
    imports.import_continue(run=run, user=importer, seconds=0, chunk_size=10)
    imports.import_continue(run=stale, user=importer, seconds=None, chunk_size=10)
    assert Opportunity.objects.count() == 30
    stale.refresh_from_db()
    assert (stale.rows_done, stale.created) == (30, 30)


def test_chunks_do_not_match_rows_an_earlier_chunk_created(stages, importer):
    text = "name,contact_email\nSame,a@x.test\nSame,a@x.test\n"
    result = import_apply(text=text, user=importer, chunk_size=1)
    assert result.created == 2
    assert Opportunity.objects.filter(name="Same").count() == 2


def test_import_keys_stay_short_after_hundreds_of_imports_into_one_column():
    last, longest = None, 0
    for _ in range(500):
        keys = keys_after(last, 1000)
        assert keys == sorted(keys) and (last is None or keys[0] > last)
        assert all(ranking.validate_key(key) is None for key in keys)
        last, longest = keys[-1], max(longest, len(keys[-1]))
    # A digit more every 61 imports: 9 prefix digits, the "0" and 3 suffix digits.
    assert longest <= 13


def test_many_imports_into_one_column_keep_order_and_key_length(stages, importer):
    for index in range(130):
        import_apply(text=f"name\nDeal {index:03}\n", user=importer)
    column = Opportunity.objects.filter(stage=stages[0]).order_by("rank", "id")
    assert [o.name for o in column] == [f"Deal {index:03}" for index in range(130)]
    assert max(len(o.rank) for o in column) <= 6


def test_a_column_with_a_too_long_last_key_is_respaced(stages, importer):
    existing = factories.OpportunityFactory(stage=stages[0], rank="z" * ranking.MAX_KEY_LENGTH)
    import_apply(text="name\nNew\n", user=importer)
    existing.refresh_from_db()
    new = Opportunity.objects.get(name="New")
    assert existing.rank < new.rank
    assert len(new.rank) <= 3 and existing.version == 1


def test_imported_rows_write_history_per_tracked_field_and_their_events(stages, importer):
    owner = factories.manager(username="olga")
    opportunity = factories.OpportunityFactory(stage=stages[0], value=10)
    untouched = factories.OpportunityFactory(stage=stages[0], value=5)
    text = (
        "id,name,value,owner,stage\n"
        f"{opportunity.pk},,99,olga,Proposal\n"
        f"{untouched.pk},,5,,\n"
        ",Brand new,1,,\n"
    )
    import_apply(text=text, user=importer)
    opportunity.refresh_from_db()
    assert (opportunity.value, opportunity.assigned_to, opportunity.version) == (99, owner, 2)
    fields = OpportunityHistory.objects.filter(opportunity=opportunity).values_list(
        "field", flat=True
    )
    assert sorted(fields) == ["owner", "stage", "value"]
    events = OpportunityEvent.objects.order_by("id")
    assert {(e.opportunity_id, e.type) for e in events} == {
        (opportunity.pk, "OpportunityStageUpdate"),
        (opportunity.pk, "OpportunityMonetaryValueUpdate"),
        (opportunity.pk, "OpportunityAssignedToUpdate"),
        (Opportunity.objects.get(name="Brand new").pk, "OpportunityCreate"),
    }
    assert all(e.actor == importer for e in events)
    assert not OpportunityHistory.objects.filter(opportunity=untouched).exists()


def test_the_import_service_itself_refuses_users_without_the_permission(stages):
    rep = factories.rep()
    with pytest.raises(PermissionDenied):
        import_apply(text="name\nA\n", user=rep)
    with pytest.raises(PermissionDenied):
        imports.import_prepare(text="name\nA\n", filename="a.csv", user=rep)
    assert not Opportunity.objects.exists() and not ImportRun.objects.exists()


def test_a_row_changed_by_someone_during_the_import_is_planned_again(stages, importer, monkeypatch):
    opportunity = factories.OpportunityFactory(stage=stages[0], name="Orig", value=10)
    versions_hold = imports._versions_hold

    def someone_edits_first(plan):
        # Between the chunk's check and its transaction, a rep changes the value.
        Opportunity.objects.filter(pk=opportunity.pk).update(value=50, version=2)
        monkeypatch.setattr(imports, "_versions_hold", versions_hold)
        return versions_hold(plan)

    monkeypatch.setattr(imports, "_versions_hold", someone_edits_first)
    import_apply(text=f"id,name\n{opportunity.pk},Imported\n", user=importer)
    opportunity.refresh_from_db()
    assert (opportunity.name, opportunity.value, opportunity.version) == ("Imported", 50, 3)
