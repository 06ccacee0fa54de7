# ruff: noqa: RUF059  (each test unpacks the whole `sales` fixture for readability)
"""Automation rules: triggers, conditions, actions, loop protection, the run log."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group
from django.core import mail
from django.core.exceptions import ValidationError
from django.utils import timezone

from automation import engine
from automation.demo import seed_demo_rules
from automation.models import (
    Action,
    ActionKind,
    Condition,
    ConditionKind,
    Notification,
    NotificationSetting,
    Outcome,
    Recipient,
    Rule,
    RuleRun,
    Trigger,
)
from opportunities.events import events_after, last_event_id
from opportunities.models import Communication, Note, Opportunity, Status, Task
from opportunities.services.moves import opportunity_move, opportunity_set_status
from opportunities.services.opportunities import opportunity_create, opportunity_update
from tests import factories

pytestmark = pytest.mark.django_db


class Pump:
    """Plays the worker's event pump: hands every new event to the engine."""

    def __init__(self):
        self.cursor = last_event_id()

    def __call__(self) -> int:
        runs = 0
        while batch := events_after(self.cursor, 100):
            self.cursor = batch[-1].id
            engine.consume(batch)
            runs += engine.run_pending()  # what the worker's run_automation task does
        return runs


@pytest.fixture
def sales():
    pipeline, stages = factories.pipeline_with_stages(name="Sales")
    rep = factories.rep(username="rep")
    boss = factories.manager(username="boss")
    deal = factories.OpportunityFactory(
        stage=stages[0], assigned_to=rep, value=1000, source="Website"
    )
    return pipeline, stages, rep, boss, deal


@pytest.fixture
def pump(sales):
    return Pump()


def rule_with(boss, *, actions, conditions=(), **fields) -> Rule:
    rule = Rule.objects.create(name=fields.pop("name", "Rule"), acting_user=boss, **fields)
    for index, action in enumerate(actions):
        Action.objects.create(rule=rule, position=index, **action)
    for condition in conditions:
        Condition.objects.create(rule=rule, **condition)
    return rule


def proposal_rule(pipeline, stage, boss, **fields):
    fields.setdefault("name", "Proposal follow-up")
    return rule_with(
        boss,
        pipeline=pipeline,
        trigger=Trigger.STAGE_ENTERED,
        stage=stage,
        actions=[{"kind": ActionKind.CREATE_TASK, "title": "Send the proposal", "due_in_days": 2}],
        **fields,
    )


def move(deal, stage, user):
    deal.refresh_from_db()
    return opportunity_move(opportunity=deal, to_stage=stage, version=deal.version, user=user)


# Triggers


def test_entering_a_stage_creates_the_task_for_the_owner(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    proposal_rule(pipeline, stages[2], boss)
    move(deal, stages[2], rep)

    assert pump() == 1
    task = Task.objects.get(opportunity=deal)
    assert task.title == "Send the proposal"
    assert task.assigned_to == rep
    assert task.created_by == boss
    assert task.due_on == timezone.localdate() + timedelta(days=2)
    run = RuleRun.objects.get()
    assert run.outcome == Outcome.DONE
    assert "created task ‘Send the proposal’" in run.summary


def test_entering_another_stage_does_not_start_the_rule(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    proposal_rule(pipeline, stages[2], boss)
    move(deal, stages[1], rep)
    assert pump() == 0
    assert not Task.objects.exists()


def test_leaving_a_stage_starts_the_rule(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    rule_with(
        boss,
        pipeline=pipeline,
        trigger=Trigger.STAGE_LEFT,
        stage=stages[0],
        actions=[{"kind": ActionKind.ADD_NOTE, "body": "Left {stage} behind"}],
    )
    move(deal, stages[3], rep)
    pump()
    assert Note.objects.get(opportunity=deal).body == "Left Negotiation behind"


def test_a_created_deal_starts_the_rule(sales, pump):
    pipeline, stages, rep, boss, _ = sales
    rule_with(
        boss,
        trigger=Trigger.CREATED,
        actions=[{"kind": ActionKind.CREATE_TASK, "title": "Call {deal}"}],
    )
    deal = opportunity_create(user=rep, name="Acme", pipeline=pipeline, assigned_to=rep)
    pump()
    assert Task.objects.get(opportunity=deal).title == "Call Acme"


def test_status_becoming_won_starts_the_rule_and_lost_does_not(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    rule_with(
        boss,
        trigger=Trigger.STATUS_BECAME,
        status=Status.WON,
        actions=[{"kind": ActionKind.ADD_NOTE, "body": "Won!"}],
    )
    other = factories.OpportunityFactory(stage=stages[0], assigned_to=rep)
    opportunity_set_status(opportunity=deal, status=Status.WON, version=deal.version, user=rep)
    opportunity_set_status(
        opportunity=other,
        status=Status.LOST,
        version=other.version,
        user=rep,
        lost_reason=factories.LostReasonFactory(name="Price"),
    )
    pump()
    assert list(Note.objects.values_list("opportunity_id", "body")) == [(deal.pk, "Won!")]


def test_value_and_owner_changes_start_their_rules(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    rule_with(
        boss,
        trigger=Trigger.VALUE_CHANGED,
        actions=[{"kind": ActionKind.ADD_NOTE, "body": "Value now {value}"}],
    )
    rule_with(
        boss,
        trigger=Trigger.OWNER_CHANGED,
        actions=[{"kind": ActionKind.NOTIFY, "title": "{deal} is yours"}],
    )
    opportunity_update(opportunity=deal, user=boss, value=Decimal("2500"))
    deal.refresh_from_db()
    rep2 = factories.rep(username="rep2")
    opportunity_update(opportunity=deal, user=boss, assigned_to=rep2)
    pump()
    assert Note.objects.get(opportunity=deal).body == "Value now 2,500.00"
    assert Notification.objects.get().user == rep2


def test_a_rule_limited_to_another_pipeline_does_not_run(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    other_pipeline, _ = factories.pipeline_with_stages(name="Partners")
    rule_with(
        boss,
        pipeline=other_pipeline,
        trigger=Trigger.VALUE_CHANGED,
        actions=[{"kind": ActionKind.ADD_NOTE, "body": "x"}],
    )
    opportunity_update(opportunity=deal, user=boss, value=7)
    assert pump() == 0


def test_a_stale_deal_notifies_its_owner_once(sales, pump, django_capture_on_commit_callbacks):
    pipeline, stages, rep, boss, deal = sales
    rule_with(
        boss,
        name="Stale deals",
        pipeline=pipeline,
        trigger=Trigger.STALE,
        stale_days=30,
        actions=[{"kind": ActionKind.NOTIFY, "title": "{deal} has not moved for 30 days"}],
    )
    fresh = factories.OpportunityFactory(stage=stages[0], assigned_to=rep)
    Opportunity.objects.filter(pk=deal.pk).update(
        stage_entered_at=timezone.now() - timedelta(days=31)
    )

    with django_capture_on_commit_callbacks(execute=True):
        assert engine.stale_check() == 1
    assert engine.stale_check() == 0  # once per stay in the stage
    note = Notification.objects.get()
    assert (note.user, note.opportunity) == (rep, deal)
    assert note.text == f"{deal.name} has not moved for 30 days"
    assert not Notification.objects.filter(opportunity=fresh).exists()
    assert mail.outbox[0].to == [rep.email]


def test_the_stale_check_reads_a_handful_of_queries(sales, django_assert_max_num_queries):
    pipeline, stages, rep, boss, deal = sales
    for days in (10, 30, 60):
        rule_with(
            boss,
            trigger=Trigger.STALE,
            stale_days=days,
            actions=[{"kind": ActionKind.NOTIFY, "title": "stale"}],
        )
    with django_assert_max_num_queries(6):
        assert engine.stale_check() == 0


# Conditions


@pytest.mark.parametrize(
    ("kind", "value", "runs"),
    [
        (ConditionKind.VALUE_GTE, "1000", True),
        (ConditionKind.VALUE_GTE, "1000.01", False),
        (ConditionKind.VALUE_LTE, "999", False),
        (ConditionKind.SOURCE_IS, "website", True),
        (ConditionKind.SOURCE_IS, "Referral", False),
        (ConditionKind.STATUS_IS, "open", True),
        (ConditionKind.STATUS_IS, "won", False),
    ],
)
def test_conditions_on_value_source_and_status(sales, pump, kind, value, runs):
    pipeline, stages, rep, boss, deal = sales
    proposal_rule(pipeline, stages[2], boss).conditions.create(kind=kind, value=value)
    move(deal, stages[2], rep)
    pump()
    assert Task.objects.exists() is runs
    run = RuleRun.objects.get()
    assert run.outcome == (Outcome.DONE if runs else Outcome.SKIPPED)
    if not runs:
        assert run.summary.startswith("conditions not met")


def test_conditions_on_the_owner_and_their_group(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    rule = proposal_rule(pipeline, stages[2], boss)
    rule.conditions.create(kind=ConditionKind.OWNER_IS, user=rep)
    rule.conditions.create(
        kind=ConditionKind.OWNER_IN_GROUP, group=Group.objects.get(name="Sales rep")
    )
    move(deal, stages[2], rep)
    pump()
    assert Task.objects.count() == 1

    rule.conditions.filter(kind=ConditionKind.OWNER_IN_GROUP).update(
        group=Group.objects.get(name="Sales manager")
    )
    move(deal, stages[1], rep)
    move(deal, stages[2], rep)
    pump()
    assert Task.objects.count() == 1


# Actions


def test_assigning_round_robin_among_a_group(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    closers = Group.objects.create(name="Closers")
    first, second = factories.rep(username="c1"), factories.rep(username="c2")
    closers.user_set.add(first, second)
    rule_with(
        boss,
        trigger=Trigger.CREATED,
        actions=[{"kind": ActionKind.ASSIGN_OWNER, "recipient": Recipient.GROUP, "group": closers}],
    )
    deals = [opportunity_create(user=boss, name=f"D{n}", pipeline=pipeline) for n in range(3)]
    pump()
    owners = [Opportunity.objects.get(pk=d.pk).assigned_to for d in deals]
    assert owners == [first, second, first]


def test_moving_and_setting_lost_with_the_rules_reason(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    reason = factories.LostReasonFactory(name="No budget")
    rule_with(
        boss,
        pipeline=pipeline,
        trigger=Trigger.VALUE_CHANGED,
        actions=[
            {"kind": ActionKind.MOVE_STAGE, "stage": stages[3]},
            {"kind": ActionKind.SET_STATUS, "status": Status.LOST, "lost_reason": reason},
        ],
    )
    opportunity_update(opportunity=deal, user=rep, value=0)
    pump()
    deal.refresh_from_db()
    assert (deal.stage, deal.status, deal.lost_reason) == (stages[3], Status.LOST, reason)
    assert deal.history.filter(user=boss).exists()


def test_notifying_a_group_emails_only_those_who_want_it(
    sales, pump, django_capture_on_commit_callbacks
):
    pipeline, stages, rep, boss, deal = sales
    team = Group.objects.create(name="Team")
    keen, quiet = factories.rep(username="keen"), factories.rep(username="quiet")
    team.user_set.add(keen, quiet)
    NotificationSetting.objects.create(user=quiet, email=False)
    proposal_rule(pipeline, stages[2], boss).actions.create(
        kind=ActionKind.NOTIFY, recipient=Recipient.GROUP, group=team, title="{deal} at proposal"
    )
    move(deal, stages[2], rep)
    with django_capture_on_commit_callbacks(execute=True):
        pump()
    assert set(Notification.objects.values_list("user__username", flat=True)) == {"keen", "quiet"}
    assert [m.to for m in mail.outbox] == [[keen.email]]


def test_emailing_the_contact_fills_placeholders_and_logs_it(
    sales, pump, django_capture_on_commit_callbacks
):
    pipeline, stages, rep, boss, deal = sales
    proposal_rule(pipeline, stages[2], boss).actions.create(
        kind=ActionKind.EMAIL_CONTACT,
        title="Your proposal for {deal}",
        body="Hello {first_name},\nregards, {owner}",
    )
    move(deal, stages[2], rep)
    with django_capture_on_commit_callbacks(execute=True):
        pump()
    sent = mail.outbox[-1]
    first_name = deal.contact.name.split(" ")[0]
    assert sent.to == [deal.contact.email]
    assert sent.subject == f"Your proposal for {deal.name}"
    assert sent.body.startswith(f"Hello {first_name},")
    assert rep.email in sent.from_email
    log = Communication.objects.get(opportunity=deal)
    assert (log.kind, log.author) == ("email", boss)


def test_emailing_a_contact_without_address_is_refused_and_logged(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    deal.contact.email = ""
    deal.contact.save()
    proposal_rule(pipeline, stages[2], boss).actions.create(
        kind=ActionKind.EMAIL_CONTACT, title="Hi", body="Hello"
    )
    move(deal, stages[2], rep)
    pump()
    run = RuleRun.objects.get()
    assert run.outcome == Outcome.REFUSED
    assert "has no e-mail address" in run.summary
    assert Task.objects.count() == 1  # the other action still ran
    assert not mail.outbox


def test_an_action_the_acting_user_may_not_do_is_refused(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    other_rep = factories.rep(username="other")
    proposal_rule(pipeline, stages[2], other_rep)  # cannot see rep's deal
    move(deal, stages[2], rep)
    pump()
    assert RuleRun.objects.get().outcome == Outcome.REFUSED
    assert not Task.objects.exists()


# Safety


def test_a_rule_never_retriggers_itself(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    closers = Group.objects.create(name="Closers")
    closers.user_set.add(factories.rep(username="c1"), factories.rep(username="c2"))
    rule = rule_with(
        boss,
        trigger=Trigger.OWNER_CHANGED,
        actions=[{"kind": ActionKind.ASSIGN_OWNER, "recipient": Recipient.GROUP, "group": closers}],
    )
    opportunity_update(opportunity=deal, user=boss, assigned_to=boss)
    pump()
    runs = list(RuleRun.objects.filter(rule=rule).order_by("id"))
    assert [r.outcome for r in runs] == [Outcome.DONE, Outcome.SKIPPED]
    assert "own action" in runs[1].summary


def test_two_rules_that_feed_each_other_stop(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    there = rule_with(
        boss,
        pipeline=pipeline,
        trigger=Trigger.STAGE_ENTERED,
        stage=stages[1],
        actions=[{"kind": ActionKind.MOVE_STAGE, "stage": stages[2]}],
    )
    back = rule_with(
        boss,
        pipeline=pipeline,
        trigger=Trigger.STAGE_ENTERED,
        stage=stages[2],
        actions=[{"kind": ActionKind.MOVE_STAGE, "stage": stages[1]}],
    )
    move(deal, stages[1], rep)
    pump()
    outcomes = list(RuleRun.objects.order_by("id").values_list("rule", "outcome"))
    assert outcomes == [
        (there.pk, Outcome.DONE),
        (back.pk, Outcome.DONE),
        (there.pk, Outcome.SKIPPED),
    ]


def test_a_chain_of_rules_stops_after_five(sales, pump, caplog):
    pipeline, _, rep, boss, _ = sales
    _, stages = factories.pipeline_with_stages(names=[f"S{n}" for n in range(8)])
    pipeline = stages[0].pipeline
    deal = factories.OpportunityFactory(stage=stages[0], assigned_to=rep)
    for n in range(7):
        rule_with(
            boss,
            name=f"step {n}",
            pipeline=pipeline,
            trigger=Trigger.STAGE_ENTERED,
            stage=stages[n],
            actions=[{"kind": ActionKind.MOVE_STAGE, "stage": stages[n + 1]}],
        )
    move(deal, stages[1], rep)  # step 1 runs first (the deal left S0 by hand)
    pump()
    deal.refresh_from_db()
    assert deal.stage == stages[6]
    last = RuleRun.objects.order_by("-id").first()
    assert last.outcome == Outcome.REFUSED
    assert "chain of 5 rules" in last.summary
    assert "reached 5 rules" in caplog.text


def test_a_disabled_rule_does_not_run(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    proposal_rule(pipeline, stages[2], boss, enabled=False)
    move(deal, stages[2], rep)
    assert pump() == 0
    assert not Task.objects.exists()


def test_a_rule_disabled_after_the_batch_was_read_stops_at_once(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    rule = proposal_rule(pipeline, stages[2], boss)
    move(deal, stages[2], rep)
    engine.consume(events_after(pump.cursor))
    Rule.objects.filter(pk=rule.pk).update(enabled=False)
    engine.run_pending()
    assert not Task.objects.exists()
    assert RuleRun.objects.get().outcome == Outcome.SKIPPED


def test_reading_the_same_events_again_runs_nothing_twice(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    proposal_rule(pipeline, stages[2], boss)
    cursor = pump.cursor
    move(deal, stages[2], rep)
    pump()
    engine.consume(events_after(cursor))
    assert engine.run_pending() == 0
    assert Task.objects.count() == 1
    assert RuleRun.objects.count() == 1


def test_a_failing_action_is_retried_then_logged_as_failed(sales, pump, monkeypatch):
    pipeline, stages, rep, boss, deal = sales
    proposal_rule(pipeline, stages[2], boss)
    calls = []

    def broken(action, opportunity, user):
        calls.append(1)
        raise ConnectionError("mail server down")

    monkeypatch.setitem(engine.RUNNERS, ActionKind.CREATE_TASK, broken)
    move(deal, stages[2], rep)
    pump()
    run = RuleRun.objects.get()
    assert len(calls) == engine.MAX_ATTEMPTS
    assert run.outcome == Outcome.FAILED
    assert "mail server down" in run.summary


def test_a_rule_whose_user_was_deactivated_is_refused_and_flagged(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    rule = proposal_rule(pipeline, stages[2], boss)
    boss.is_active = False
    boss.save()
    move(deal, stages[2], rep)
    pump()
    assert RuleRun.objects.get().outcome == Outcome.REFUSED
    rule.refresh_from_db()
    assert "deactivated" in rule.problem


def test_a_rule_whose_stage_was_deleted_is_refused_and_flagged(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    rule = rule_with(
        boss,
        pipeline=pipeline,
        trigger=Trigger.VALUE_CHANGED,
        actions=[{"kind": ActionKind.MOVE_STAGE, "stage": stages[3]}],
    )
    Action.objects.filter(rule=rule).update(stage=None)  # as when the stage is deleted
    opportunity_update(opportunity=deal, user=rep, value=5)
    pump()
    rule.refresh_from_db()
    assert "Choose the stage" in rule.problem
    assert RuleRun.objects.get().outcome == Outcome.REFUSED


# Validation when a rule is saved


def test_bad_rules_are_refused_with_a_message(sales):
    pipeline, stages, rep, boss, deal = sales
    _, other_stages = factories.pipeline_with_stages(name="Other")
    retired = factories.manager(username="retired", is_active=False)
    rule = Rule(
        name="r",
        pipeline=pipeline,
        trigger=Trigger.STAGE_ENTERED,
        stage=other_stages[0],
        acting_user=retired,
    )
    with pytest.raises(ValidationError) as refused:
        rule.full_clean()
    assert "another pipeline" in str(refused.value.message_dict["stage"])
    assert "deactivated" in str(refused.value.message_dict["acting_user"])

    rule = proposal_rule(pipeline, stages[2], boss)
    empty = Group.objects.create(name="Nobody")
    bad_actions = {
        "due_in_days": Action(rule=rule, kind=ActionKind.CREATE_TASK, title="t", due_in_days=-5),
        "group": Action(
            rule=rule, kind=ActionKind.NOTIFY, title="t", recipient=Recipient.GROUP, group=empty
        ),
        "stage": Action(rule=rule, kind=ActionKind.MOVE_STAGE, stage=other_stages[1]),
        "lost_reason": Action(rule=rule, kind=ActionKind.SET_STATUS, status=Status.LOST),
        "body": Action(rule=rule, kind=ActionKind.EMAIL_CONTACT, title="Hi {nickname}", body="x"),
    }
    for field, action in bad_actions.items():
        with pytest.raises(ValidationError) as refused:
            action.full_clean()
        assert field in refused.value.message_dict or "title" in refused.value.message_dict, field


# Demo data


def test_seed_automation_creates_the_two_demo_rules_once(sales):
    pipeline, stages, rep, boss, deal = sales
    factories.manager(username="manager")
    first = seed_demo_rules()
    assert seed_demo_rules() == first
    proposal, stale = first
    assert (proposal.trigger, proposal.stage, proposal.enabled) == (
        Trigger.STAGE_ENTERED,
        stages[2],
        True,
    )
    assert proposal.actions.get().title == "Send the proposal"
    assert (stale.trigger, stale.stale_days) == (Trigger.STALE, 30)
    assert Rule.objects.count() == 2


# Bounded work


def test_queuing_and_settling_skipped_runs_take_a_fixed_number_of_queries(
    sales, pump, django_assert_max_num_queries
):
    pipeline, stages, rep, boss, deal = sales
    for n in range(3):
        rule_with(
            boss,
            name=f"big deals {n}",
            trigger=Trigger.VALUE_CHANGED,
            conditions=[{"kind": ConditionKind.VALUE_GTE, "value": "1000000"}],
            actions=[{"kind": ActionKind.ADD_NOTE, "body": "big"}],
        )
    deals = [factories.OpportunityFactory(stage=stages[0], assigned_to=rep) for _ in range(20)]
    for each in deals:
        opportunity_update(opportunity=each, user=rep, value=5)
    events = events_after(pump.cursor, 1000)
    with django_assert_max_num_queries(12):
        engine.consume(events)
    assert RuleRun.objects.count() == 60
    with django_assert_max_num_queries(12):
        assert engine.run_pending() == 60
    assert set(RuleRun.objects.values_list("outcome", flat=True)) == {Outcome.SKIPPED}


# Tags, followers, custom fields, the trash


def test_tag_condition_and_tag_actions(sales, pump):
    from opportunities.services.related import opportunity_set_tags

    pipeline, stages, rep, boss, deal = sales
    rule = proposal_rule(pipeline, stages[2], boss)
    rule.conditions.create(kind=ConditionKind.TAG_HAS, value="hot")
    rule.actions.create(kind=ActionKind.ADD_TAG, title="proposal-sent", position=1)
    rule.actions.create(kind=ActionKind.REMOVE_TAG, title="HOT", position=2)
    move(deal, stages[2], rep)
    pump()
    assert not Task.objects.exists()  # no tag "hot" yet

    deal.refresh_from_db()
    opportunity_set_tags(opportunity=deal, user=rep, names=["Hot", "vip"])
    move(deal, stages[1], rep)
    move(deal, stages[2], rep)
    pump()
    assert Task.objects.count() == 1
    assert sorted(deal.tags.values_list("name", flat=True)) == ["proposal-sent", "vip"]


def test_custom_field_condition(sales, pump):
    from opportunities.models import CustomField
    from opportunities.services.related import opportunity_set_custom_values

    pipeline, stages, rep, boss, deal = sales
    region = CustomField.objects.create(name="Region", key="region", field_type="text")
    rule = proposal_rule(pipeline, stages[2], boss)
    rule.conditions.create(
        kind=ConditionKind.CUSTOM_FIELD_EQUALS, custom_field=region, value="north"
    )
    opportunity_set_custom_values(opportunity=deal, user=rep, values={"region": "South"})
    move(deal, stages[2], rep)
    pump()
    assert not Task.objects.exists()
    assert "Region is not “north”" in RuleRun.objects.get().summary

    deal.refresh_from_db()
    opportunity_set_custom_values(opportunity=deal, user=rep, values={"region": "North"})
    move(deal, stages[1], rep)
    move(deal, stages[2], rep)
    pump()
    assert Task.objects.count() == 1


def test_tasks_and_notifications_for_the_followers(sales, pump):
    from opportunities.services.related import opportunity_set_followers

    pipeline, stages, rep, boss, deal = sales
    ann, bob = factories.rep(username="ann"), factories.rep(username="bob")
    opportunity_set_followers(opportunity=deal, user=boss, followers=[ann, bob])
    rule_with(
        boss,
        pipeline=pipeline,
        trigger=Trigger.STAGE_ENTERED,
        stage=stages[2],
        actions=[
            {"kind": ActionKind.CREATE_TASK, "title": "Review", "recipient": Recipient.FOLLOWERS},
            {"kind": ActionKind.NOTIFY, "title": "{deal} moved", "recipient": Recipient.FOLLOWERS},
        ],
    )
    move(deal, stages[2], rep)
    pump()
    assert set(Task.objects.values_list("assigned_to__username", flat=True)) == {"ann", "bob"}
    assert set(Notification.objects.values_list("user__username", flat=True)) == {"ann", "bob"}


def test_a_deal_in_the_trash_is_left_alone(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    proposal_rule(pipeline, stages[2], boss)
    move(deal, stages[2], rep)
    Opportunity.objects.filter(pk=deal.pk).update(deleted_at=timezone.now())
    pump()
    assert not Task.objects.exists()
    assert "in the trash" in RuleRun.objects.get().summary


def test_causes_of_pruned_events_are_forgotten(sales, pump):
    from automation.models import CausedEvent
    from opportunities.models import OpportunityEvent

    pipeline, stages, rep, boss, deal = sales
    rule_with(
        boss,
        pipeline=pipeline,
        trigger=Trigger.STAGE_ENTERED,
        stage=stages[1],
        actions=[{"kind": ActionKind.MOVE_STAGE, "stage": stages[2]}],
    )
    move(deal, stages[1], rep)
    pump()
    assert CausedEvent.objects.count() == 1
    assert engine.prune_caused_events() == 0
    OpportunityEvent.objects.all().delete()
    assert engine.prune_caused_events() == 1


def test_a_stale_rule_without_days_uses_the_stages_rotting_days(sales, pump):
    pipeline, stages, rep, boss, deal = sales
    stages[0].rotting_days = 10
    stages[0].save()
    other = factories.OpportunityFactory(stage=stages[1], assigned_to=rep)  # no rotting days
    rule_with(
        boss,
        pipeline=pipeline,
        trigger=Trigger.STALE,
        actions=[{"kind": ActionKind.NOTIFY, "title": "{deal} is rotting"}],
    )
    Opportunity.objects.filter(pk__in=[deal.pk, other.pk]).update(
        stage_entered_at=timezone.now() - timedelta(days=11)
    )
    assert engine.stale_check() == 1
    assert Notification.objects.get().opportunity == deal


def test_a_run_that_breaks_outside_its_actions_is_logged_failed_and_the_queue_moves_on(
    sales, pump, monkeypatch
):
    pipeline, stages, rep, boss, deal = sales
    proposal_rule(pipeline, stages[2], boss, name="first")
    proposal_rule(pipeline, stages[2], boss, name="second")
    real_problem = engine.rule_problem

    def broken(rule):
        if rule.name == "first":
            raise RuntimeError("database hiccup")
        return real_problem(rule)

    monkeypatch.setattr(engine, "rule_problem", broken)
    move(deal, stages[2], rep)
    pump()
    runs = dict(RuleRun.objects.values_list("rule__name", "outcome"))
    assert runs == {"first": Outcome.FAILED, "second": Outcome.DONE}
    assert "database hiccup" in RuleRun.objects.get(rule__name="first").summary


def test_the_worker_job_drains_every_queued_run(sales, pump):
    from automation.tasks import run_automation

    pipeline, stages, rep, boss, deal = sales
    proposal_rule(pipeline, stages[2], boss)
    deals = [factories.OpportunityFactory(stage=stages[0], assigned_to=rep) for _ in range(5)]
    for each in deals:
        move(each, stages[2], rep)
    engine.consume(events_after(pump.cursor, 1000))
    assert run_automation.call() == 5
    assert Task.objects.count() == 5
    assert not engine.pending_exists()
