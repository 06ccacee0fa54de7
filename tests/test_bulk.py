"""Bulk actions: the same rules as one-deal changes, in chunks, skipping what must not change."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from opportunities.models import (
    CustomField,
    CustomFieldType,
    CustomFieldValue,
    EventType,
    Opportunity,
    OpportunityEvent,
    OpportunityHistory,
    Status,
    TrackedField,
)
from opportunities.selectors import opportunities_visible_to
from opportunities.services import bulk
from opportunities.services.bulk import bulk_action_check, bulk_apply, bulk_would_change
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def board():
    pipeline, stages = factories.pipeline_with_stages()
    return pipeline, stages


@pytest.fixture
def manager():
    return factories.manager()


def _deals(stages, count, **kwargs):
    return factories.OpportunityFactory.create_batch(count, stage=stages[0], **kwargs)


def _versions(deals):
    return {deal.pk: deal.version for deal in deals}


def test_lost_needs_a_reason_once_for_all(manager):
    with pytest.raises(ValidationError) as error:
        bulk_action_check(user=manager, kind=bulk.STATUS, status=Status.LOST)
    assert "lost_reason" in error.value.message_dict


def test_bulk_lost_marks_every_deal_with_history_and_one_event_set_each(board, manager):
    _, stages = board
    deals = _deals(stages, 5)
    reason = factories.LostReasonFactory()
    action = bulk_action_check(
        user=manager, kind=bulk.STATUS, status=Status.LOST, lost_reason_id=reason.pk
    )
    result, more = bulk_apply(
        user=manager, action=action, ids=[d.pk for d in deals], versions=_versions(deals)
    )
    assert (result.changed, result.unchanged, result.skipped, more) == (5, 0, [], None)
    for deal in Opportunity.objects.filter(pk__in=[d.pk for d in deals]):
        assert deal.status == Status.LOST and deal.lost_reason == reason
        assert deal.closed_at is not None and deal.version == 2
    assert OpportunityHistory.objects.filter(field=TrackedField.STATUS).count() == 5
    status_events = OpportunityEvent.objects.filter(type=EventType.STATUS_UPDATE)
    assert sorted(status_events.values_list("opportunity_id", flat=True)) == sorted(
        d.pk for d in deals
    )


def test_stale_versions_mixed_in_are_skipped_and_reported(board, manager):
    _, stages = board
    deals = _deals(stages, 4)
    seen = _versions(deals)
    # Someone else changes two of them after the preview.
    Opportunity.objects.filter(pk__in=[deals[1].pk, deals[3].pk]).update(
        value=Decimal(1), version=5
    )
    action = bulk_action_check(user=manager, kind=bulk.STATUS, status=Status.WON)
    result, _ = bulk_apply(user=manager, action=action, ids=list(seen), versions=seen)
    assert result.changed == 2
    assert sorted(result.skipped) == sorted([(deals[1].pk, bulk.STALE), (deals[3].pk, bulk.STALE)])
    untouched = Opportunity.objects.get(pk=deals[1].pk)
    assert (untouched.status, untouched.version) == (Status.OPEN, 5)


def test_deals_updated_after_the_preview_time_are_stale(board, manager):
    _, stages = board
    deals = _deals(stages, 3)
    seen_at = timezone.now()
    Opportunity.objects.filter(pk=deals[0].pk).update(updated_at=seen_at + timedelta(seconds=1))
    action = bulk_action_check(user=manager, kind=bulk.STATUS, status=Status.ABANDONED)
    selection = opportunities_visible_to(manager)
    result, _ = bulk_apply(user=manager, action=action, selection=selection, seen_at=seen_at)
    assert result.changed == 2
    assert result.skipped == [(deals[0].pk, bulk.STALE)]


def test_deals_the_user_cannot_see_are_reported_and_unchanged(board):
    _, stages = board
    rep = factories.rep()
    own = _deals(stages, 2, assigned_to=rep)
    others = _deals(stages, 2, assigned_to=factories.rep())
    ids = [d.pk for d in own + others] + [999_999]
    action = bulk_action_check(user=rep, kind=bulk.STATUS, status=Status.WON)
    result, _ = bulk_apply(user=rep, action=action, ids=ids, versions=_versions(own + others))
    assert result.changed == 2
    assert sorted(result.skipped) == sorted(
        (pk, bulk.NOT_VISIBLE) for pk in [others[0].pk, others[1].pk, 999_999]
    )
    assert set(
        Opportunity.objects.filter(pk__in=[d.pk for d in others]).values_list("status", flat=True)
    ) == {Status.OPEN}


def test_reps_cannot_bulk_delete(board):
    with pytest.raises(PermissionDenied):
        bulk_action_check(user=factories.rep(), kind=bulk.DELETE)


def test_move_skips_deals_of_another_pipeline(board, manager):
    _, stages = board
    _, other_stages = factories.pipeline_with_stages()
    here = _deals(stages, 2)
    there = _deals(other_stages, 1)
    action = bulk_action_check(user=manager, kind=bulk.MOVE, stage_id=stages[2].pk)
    assert bulk_would_change(action=action, queryset=Opportunity.objects.all()) == 2
    result, _ = bulk_apply(user=manager, action=action, ids=[d.pk for d in here + there])
    assert result.changed == 2
    assert result.skipped == [(there[0].pk, bulk.OTHER_PIPELINE)]
    moved = list(Opportunity.objects.filter(stage=stages[2]).order_by("rank"))
    assert [d.pk for d in moved] == [d.pk for d in here]
    assert OpportunityEvent.objects.filter(type=EventType.STAGE_UPDATE).count() == 2


def test_reassign_owner_and_unchanged_deals_are_counted(board, manager):
    _, stages = board
    owner = factories.rep()
    deals = _deals(stages, 2) + _deals(stages, 1, assigned_to=owner)
    action = bulk_action_check(user=manager, kind=bulk.OWNER, owner_id=owner.pk)
    assert bulk_would_change(action=action, queryset=Opportunity.objects.all()) == 2
    result, _ = bulk_apply(user=manager, action=action, ids=[d.pk for d in deals])
    assert (result.changed, result.unchanged) == (2, 1)
    assert set(Opportunity.objects.values_list("assigned_to", flat=True)) == {owner.pk}


def test_add_and_remove_tags(board, manager):
    _, stages = board
    deals = _deals(stages, 3)
    ids = [d.pk for d in deals]
    add = bulk_action_check(user=manager, kind=bulk.ADD_TAGS, tags="vip, Partner")
    result, _ = bulk_apply(user=manager, action=add, ids=ids)
    assert result.changed == 3
    assert sorted(deals[0].tags.values_list("name", flat=True)) == ["Partner", "vip"]
    assert bulk_would_change(action=add, queryset=Opportunity.objects.all()) == 0
    remove = bulk_action_check(user=manager, kind=bulk.REMOVE_TAGS, tags=["VIP"])
    result, _ = bulk_apply(user=manager, action=remove, ids=ids[:2])
    assert result.changed == 2
    assert list(deals[0].tags.values_list("name", flat=True)) == ["Partner"]
    assert list(deals[2].tags.order_by("name").values_list("name", flat=True)) == [
        "Partner",
        "vip",
    ]
    assert OpportunityHistory.objects.filter(field=TrackedField.TAGS).count() == 5


def test_tags_with_markup_are_refused(manager):
    with pytest.raises(ValidationError):
        bulk_action_check(user=manager, kind=bulk.ADD_TAGS, tags="<b>x</b>")


def test_set_custom_field_parses_once_and_records_history(board, manager):
    _, stages = board
    deals = _deals(stages, 3)
    budget = CustomField.objects.create(
        name="Budget", key="budget", field_type=CustomFieldType.MONEY
    )
    with pytest.raises(ValidationError):
        bulk_action_check(user=manager, kind=bulk.CUSTOM_FIELD, field_key="budget", value="lots")
    action = bulk_action_check(
        user=manager, kind=bulk.CUSTOM_FIELD, field_key="budget", value="1,500"
    )
    result, _ = bulk_apply(user=manager, action=action, ids=[d.pk for d in deals])
    assert result.changed == 3
    assert set(CustomFieldValue.objects.filter(field=budget).values_list("number", flat=True)) == {
        Decimal("1500.00")
    }
    assert OpportunityHistory.objects.filter(field=TrackedField.CUSTOM_FIELD).count() == 3


def test_bulk_delete_moves_to_the_trash(board, manager):
    _, stages = board
    deals = _deals(stages, 2)
    action = bulk_action_check(user=manager, kind=bulk.DELETE)
    result, _ = bulk_apply(user=manager, action=action, ids=[d.pk for d in deals])
    assert result.changed == 2
    assert not opportunities_visible_to(manager).exists()
    assert Opportunity.objects.filter(deleted_by=manager).count() == 2
    assert OpportunityEvent.objects.filter(type=EventType.DELETE).count() == 2


def test_queries_per_chunk_do_not_grow_with_its_size(board, manager):
    _, stages = board
    reason = factories.LostReasonFactory()
    action = bulk_action_check(
        user=manager, kind=bulk.STATUS, status=Status.LOST, lost_reason_id=reason.pk
    )
    counts = []
    for size in (3, 40):
        deals = _deals(stages, size)
        with CaptureQueriesContext(connection) as queries:
            result = bulk.bulk_apply_chunk(
                user=manager, action=action, ids=[d.pk for d in deals], versions=_versions(deals)
            )
        assert result.changed == size
        counts.append(len(queries))
    assert counts[0] == counts[1]
    assert counts[1] <= 12


def test_large_selection_goes_chunk_by_chunk_and_resumes(board, manager, monkeypatch):
    _, stages = board
    deals = _deals(stages, 7)
    action = bulk_action_check(user=manager, kind=bulk.STATUS, status=Status.WON)
    selection = opportunities_visible_to(manager)
    seen_at = timezone.now()
    result, after = bulk_apply(
        user=manager, action=action, selection=selection, seen_at=seen_at, chunk_size=3, seconds=0
    )
    assert (result.changed, after) == (3, sorted(d.pk for d in deals)[2])
    rest, after = bulk_apply(
        user=manager,
        action=action,
        selection=selection,
        seen_at=seen_at,
        chunk_size=3,
        after_id=after,
    )
    assert (rest.changed, after) == (4, None)


# --- the pages: preview, apply in steps, per-deal report ---------------------------------


def _preview(client, data):
    return client.post("/opportunities/bulk/", data)


def test_list_offers_bulk_actions_to_managers_only(client, board):
    _, stages = board
    deal = _deals(stages, 1)[0]
    client.force_login(factories.manager())
    html = client.get("/opportunities/").content.decode()
    assert 'id="bulk-form"' in html and f'value="{deal.pk}:{deal.version}"' in html
    viewer = factories.UserFactory()
    client.force_login(viewer)
    assert 'id="bulk-form"' not in client.get("/opportunities/").content.decode()


def test_preview_of_all_matching_then_apply_marks_them_lost(client, board, manager):
    _, stages = board
    web = _deals(stages, 3, source="Web")
    other = _deals(stages, 2, source="Fair")
    reason = factories.LostReasonFactory(name="Budget")
    client.force_login(manager)
    data = {
        "action": bulk.STATUS,
        "status": Status.LOST,
        "lost_reason": reason.pk,
        "scope": "all",
        "filters": "?source=Web",
    }
    preview = _preview(client, data)
    assert preview.status_code == 200
    assert preview.context["would_change"] == 3
    token = preview.context["token"]
    done = client.post("/opportunities/bulk/run/", {"token": token})
    assert done.context["done"] and done.context["result"].changed == 3
    assert set(
        Opportunity.objects.filter(pk__in=[d.pk for d in web]).values_list("status", flat=True)
    ) == {Status.LOST}
    assert set(
        Opportunity.objects.filter(pk__in=[d.pk for d in other]).values_list("status", flat=True)
    ) == {Status.OPEN}


def test_preview_without_a_lost_reason_asks_for_it(client, board, manager):
    _, stages = board
    deal = _deals(stages, 1)[0]
    client.force_login(manager)
    response = _preview(
        client,
        {"action": bulk.STATUS, "status": Status.LOST, "ids": [f"{deal.pk}:{deal.version}"]},
    )
    assert response.status_code == 400
    assert "Choose why this opportunity was lost." in response.content.decode()


def test_ticked_rows_changed_since_the_preview_are_listed_as_skipped(client, board, manager):
    _, stages = board
    deals = _deals(stages, 2)
    client.force_login(manager)
    ids = [f"{d.pk}:{d.version}" for d in deals]
    preview = _preview(client, {"action": bulk.STATUS, "status": Status.WON, "ids": ids})
    Opportunity.objects.filter(pk=deals[0].pk).update(version=9)
    done = client.post("/opportunities/bulk/run/", {"token": preview.context["token"]})
    html = done.content.decode()
    assert f'data-skipped="{deals[0].pk}"' in html and "Changed by someone else" in html
    assert Opportunity.objects.get(pk=deals[1].pk).status == Status.WON


def test_forged_token_changes_nothing(client, board, manager):
    _, stages = board
    _deals(stages, 1)
    client.force_login(manager)
    response = client.post("/opportunities/bulk/run/", {"token": "x"})
    assert response.status_code == 400
    assert not Opportunity.objects.exclude(status=Status.OPEN).exists()


def test_big_selection_reports_progress_and_goes_on_by_itself(client, board, manager, monkeypatch):
    _, stages = board
    _deals(stages, 5)
    monkeypatch.setattr("opportunities.views.bulk.STEP_SECONDS", 0)
    monkeypatch.setattr("opportunities.services.bulk.CHUNK_SIZE", 2)
    monkeypatch.setattr(
        bulk.bulk_apply, "__kwdefaults__", {**bulk.bulk_apply.__kwdefaults__, "chunk_size": 2}
    )
    client.force_login(manager)
    preview = _preview(
        client, {"action": bulk.STATUS, "status": Status.WON, "scope": "all", "filters": ""}
    )
    step = client.post("/opportunities/bulk/run/", {"token": preview.context["token"]})
    steps = 1
    while not step.context["done"]:
        assert 'hx-trigger="load' in step.content.decode()
        step = client.post(
            "/opportunities/bulk/run/",
            {"token": preview.context["token"], "progress": step.context["progress_token"]},
            headers={"HX-Request": "true", "HX-Target": "bulk-progress"},
        )
        steps += 1
    assert steps == 3
    assert step.context["result"].changed == 5


def test_closing_in_bulk_stores_each_deals_own_days_to_close(board, manager):
    _, stages = board
    now = timezone.now()
    deals = [
        factories.OpportunityFactory(stage=stages[0], created_at=now - timedelta(days=days))
        for days in (3, 10, 40)
    ]
    action = bulk_action_check(user=manager, kind=bulk.STATUS, status=Status.WON)
    result, _ = bulk_apply(user=manager, action=action, ids=[d.pk for d in deals])
    assert result.changed == 3
    stored = dict(Opportunity.objects.values_list("pk", "days_to_close"))
    assert [stored[d.pk] for d in deals] == [3, 10, 40]
