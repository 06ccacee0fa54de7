"""The automation engine: rules matched against events, actions run as the rule's user.

Entry points (both run on the worker, never in a web request):
- `consume(events)`: the event pump hands over each batch of new events
  (settings.EVENT_CONSUMERS); every enabled rule whose trigger matches runs once per event.
- `stale_check()`: a periodic job (settings.PERIODIC_JOBS) that runs the "stale" rules
  on deals that have rotted for the rule's number of days, once per stay in a stage.

Loop protection. While a rule's actions run, the engine notes the id of the last event;
afterwards, the events written since then for that deal by the rule's acting user are
the ones its actions caused (services append events in the same transaction, under the
append lock). They are stored in `CausedEvent` with the chain of rules behind them. When
such an event comes back through the pump, a rule already in its chain is skipped (a rule
never retriggers itself, nor an A → B → A loop), and a chain of MAX_CHAIN rules stops
with a logged warning.

The pump's `consume` only queues: it writes one pending `RuleRun` per rule × event and
enqueues the `run_automation` task; the worker's `run_pending` executes them. Every run
ends logged: done, refused (and why), skipped (conditions not met, own change) or failed
after MAX_ATTEMPTS tries. The run log's unique constraints make re-reading events
harmless: a rule never runs twice for one event.
"""

import logging
from collections.abc import Iterable
from decimal import Decimal

from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Prefetch, Q
from django.utils import timezone

from automation.actions import EVENT_RUNNERS, RUNNERS
from automation.models import (
    TRIGGER_EVENT_TYPES,
    Action,
    CausedEvent,
    ConditionKind,
    Outcome,
    Rule,
    RuleRun,
    Trigger,
    action_problem,
)
from opportunities.custom_fields import value_of
from opportunities.errors import StaleVersion
from opportunities.events import last_event_id
from opportunities.models import (
    LIVE,
    CustomFieldValue,
    Opportunity,
    OpportunityEvent,
)
from opportunities.selectors import rotting_condition

logger = logging.getLogger(__name__)

MAX_CHAIN = 5
MAX_ATTEMPTS = 3
STALE_BATCH = 500


def enabled_rules(*triggers) -> list[Rule]:
    rules = Rule.objects.filter(enabled=True)
    rules = rules.filter(trigger__in=triggers) if triggers else rules.exclude(trigger="stale")
    return _rules(rules)


def _rules(rules) -> list[Rule]:
    return list(
        rules.select_related("acting_user", "stage", "pipeline").prefetch_related(
            "conditions__group",
            Prefetch(
                "actions",
                queryset=Action.objects.select_related(
                    "user", "group", "stage", "lost_reason", "webhook"
                ),
            ),
        )
    )


def _change(event, *names) -> dict | None:
    changes = (event.payload or {}).get("changes") or {}
    for name in names:
        if name in changes:
            return changes[name]
    return None


def _same(a, b) -> bool:
    return a is not None and b is not None and str(a) == str(b)


def rule_matches(rule: Rule, event) -> bool:
    """Does this event start this rule? (Conditions are checked later, on the deal.)"""
    if TRIGGER_EVENT_TYPES.get(rule.trigger) != event.type:
        return False
    if rule.pipeline_id is not None and not _same(event.pipeline_id, rule.pipeline_id):
        return False
    if rule.trigger in (Trigger.STAGE_ENTERED, Trigger.STAGE_LEFT):
        change = _change(event, "pipelineStageId", "stage")
        side = "new" if rule.trigger == Trigger.STAGE_ENTERED else "old"
        return change is not None and _same(change.get(side), rule.stage_id)
    if rule.trigger == Trigger.STATUS_BECAME:
        change = _change(event, "status")
        return change is not None and change.get("new") == rule.status
    return True


def conditions_unmet(rule: Rule, opportunity: Opportunity) -> str | None:
    """Why the deal fails the rule's conditions, or None when it meets them all."""
    for condition in rule.conditions.all():
        kind, value = condition.kind, condition.value
        if kind == ConditionKind.VALUE_GTE and not opportunity.value >= _number(value):
            return f"value {opportunity.value} is below {value}"
        if kind == ConditionKind.VALUE_LTE and not opportunity.value <= _number(value):
            return f"value {opportunity.value} is above {value}"
        if kind == ConditionKind.SOURCE_IS and opportunity.source.lower() != value.lower():
            return f"source is “{opportunity.source}”, not “{value}”"
        if kind == ConditionKind.STATUS_IS and opportunity.status != value:
            return f"status is {opportunity.status}, not {value}"
        if kind == ConditionKind.OWNER_IS and opportunity.assigned_to_id != condition.user_id:
            return f"owner is not {condition.user}"
        if kind == ConditionKind.OWNER_IN_GROUP and not (
            opportunity.assigned_to_id
            and condition.group.user_set.filter(pk=opportunity.assigned_to_id).exists()
        ):
            return f"owner is not in the group “{condition.group}”"
        if (
            kind == ConditionKind.TAG_HAS
            and not opportunity.tags.filter(name__iexact=value.strip()).exists()
        ):
            return f"no tag “{value}”"
        if kind == ConditionKind.CUSTOM_FIELD_EQUALS and not _custom_value_equals(
            opportunity, condition.custom_field, value
        ):
            return f"{condition.custom_field} is not “{value}”"
    return None


def _custom_value_equals(opportunity, field, expected: str) -> bool:
    stored = CustomFieldValue.objects.filter(opportunity=opportunity, field=field).first()
    actual = value_of(stored) if stored is not None else None
    expected = expected.strip()
    if actual is None or actual == "":
        return expected == ""
    if isinstance(actual, bool):
        return actual == (expected.lower() in {"1", "true", "yes", "on", "checked"})
    if isinstance(actual, list):
        return expected.casefold() in {item.casefold() for item in actual}
    if isinstance(actual, Decimal):
        try:
            return actual == Decimal(expected)
        except ArithmeticError:
            return False
    return str(actual).casefold() == expected.casefold()


def _number(value: str):
    return Decimal(value)


def rule_problem(rule: Rule) -> str | None:
    """What in the world changed since the rule was saved so that it cannot run."""
    if not rule.acting_user.is_active:
        return f"its user {rule.acting_user} is deactivated"
    if rule.trigger in (Trigger.STAGE_ENTERED, Trigger.STAGE_LEFT) and rule.stage_id is None:
        return "its stage was deleted"
    if (
        rule.stage_id
        and rule.pipeline_id
        and rule.stage.pipeline_id != rule.pipeline_id
        and rule.trigger in (Trigger.STAGE_ENTERED, Trigger.STAGE_LEFT)
    ):
        return "its stage belongs to another pipeline"
    for action in rule.actions.all():
        action.rule = rule
        problem = action_problem(action)
        if problem:
            return f"{action.get_kind_display()}: {problem[1]}"
    return None


def _load(opportunity_id) -> Opportunity | None:
    # A deal in the trash is left alone, as if gone.
    return (
        Opportunity.objects.select_related("stage", "contact", "assigned_to", "lost_reason")
        .filter(LIVE, pk=opportunity_id)
        .first()
    )


def _claim(rule: Rule, *, opportunity_id, event_id=None, chain=(), stale_since=None):
    """A pending run of `rule`; None when this rule already has one for that event/spell."""
    try:
        with transaction.atomic():
            return RuleRun.objects.create(
                rule=rule,
                event_id=event_id,
                opportunity_id=opportunity_id,
                stale_since=stale_since,
                chain=list(chain),
                outcome=Outcome.PENDING,
            )
    except IntegrityError:  # already claimed (a re-read event, another pump)
        return None


def _finish(run: RuleRun, outcome: str, detail: str) -> RuleRun:
    run.outcome, run.results = outcome, [{"outcome": outcome, "detail": detail}]
    run.finished_at = timezone.now()
    run.save(update_fields=["outcome", "results", "opportunity", "finished_at"])
    return run


def _run_action(action: Action, rule: Rule, opportunity_id, event_id=None) -> dict:
    label = action.get_kind_display()
    extra = {"event_id": event_id} if action.kind in EVENT_RUNNERS else {}
    error = ""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        opportunity = _load(opportunity_id)
        if opportunity is None:
            return {"action": label, "outcome": Outcome.REFUSED, "detail": "the deal is gone"}
        try:
            with transaction.atomic():
                detail = RUNNERS[action.kind](action, opportunity, rule.acting_user, **extra)
            return {"action": label, "outcome": Outcome.DONE, "detail": detail}
        except StaleVersion:
            error = "the deal kept changing under it"  # someone wrote first: read again
        except (PermissionDenied, ValidationError, ObjectDoesNotExist) as exc:
            message = "; ".join(getattr(exc, "messages", None) or [str(exc) or "not allowed"])
            return {"action": label, "outcome": Outcome.REFUSED, "detail": message}
        except Exception as exc:
            logger.exception("Automation %r action %s failed (try %s)", rule.name, label, attempt)
            error = f"{type(exc).__name__}: {exc}"
    return {
        "action": label,
        "outcome": Outcome.FAILED,
        "detail": f"failed after {MAX_ATTEMPTS} tries: {error}",
    }


def _precheck(run: RuleRun, rule: Rule, opportunity, enabled: bool) -> tuple[str, str] | None:
    """Why the run ends without running actions (outcome, detail), or None to run it.

    Cheap (no writes): the worker applies it to a whole batch with one read of the
    deals, so the many runs whose conditions fail cost no transaction of their own.
    """
    chain = list(run.chain)
    if rule.pk in chain:
        return Outcome.SKIPPED, "caused by this rule's own action: not run again"
    if len(chain) >= MAX_CHAIN:
        logger.warning("Automation chain %s reached %s rules: %r stopped", chain, MAX_CHAIN, rule)
        return Outcome.REFUSED, f"a chain of {MAX_CHAIN} rules ran before it: stopped"
    # A rule disabled after its run was queued stops at once.
    if not enabled:
        return Outcome.SKIPPED, "the rule was disabled before it ran"
    if opportunity is None:
        return Outcome.SKIPPED, "the deal no longer exists or is in the trash"
    unmet = conditions_unmet(rule, opportunity)
    if unmet:
        return Outcome.SKIPPED, f"conditions not met: {unmet}"
    return None


@transaction.atomic
def execute(run: RuleRun, rule: Rule) -> RuleRun:
    """Run a pending run's rule for its deal and log what happened, in one transaction."""
    opportunity = _load(run.opportunity_id)
    enabled = Rule.objects.filter(pk=rule.pk, enabled=True).exists()
    stop = _precheck(run, rule, opportunity, enabled)
    if stop:
        if opportunity is None:
            run.opportunity_id = None
        return _finish(run, *stop)
    problem = rule_problem(rule)
    if problem:
        Rule.objects.filter(pk=rule.pk).update(problem=problem[:300])
        return _finish(run, Outcome.REFUSED, f"the rule cannot run: {problem}")

    chain = list(run.chain)
    before = last_event_id()
    results = [
        _run_action(action, rule, opportunity.pk, run.event_id) for action in rule.actions.all()
    ]
    caused = OpportunityEvent.objects.filter(
        id__gt=before, opportunity_id=opportunity.pk, actor=rule.acting_user
    ).values_list("id", flat=True)
    CausedEvent.objects.bulk_create(
        [CausedEvent(event_id=pk, chain=[*chain, rule.pk]) for pk in caused],
        ignore_conflicts=True,
    )
    outcomes = {result["outcome"] for result in results}
    run.outcome = next(
        (o for o in (Outcome.FAILED, Outcome.REFUSED) if o in outcomes), Outcome.DONE
    )
    run.results = results
    run.finished_at = timezone.now()
    run.save(update_fields=["outcome", "results", "finished_at"])
    if rule.problem and run.outcome == Outcome.DONE:
        Rule.objects.filter(pk=rule.pk).update(problem="")
    return run


def pending_exists() -> bool:
    return RuleRun.objects.filter(outcome=Outcome.PENDING).exists()


def run_pending(limit: int = 200) -> int:
    """Execute queued runs, oldest first (the worker's job); returns how many ended.

    One read of the batch's deals settles the runs that stop early (conditions not met,
    own change, rule disabled) in one transaction; each remaining run then executes in
    its own transaction, re-reading its deal.
    """
    runs = list(RuleRun.objects.filter(outcome=Outcome.PENDING).order_by("id")[:limit])
    if not runs:
        return 0
    rule_ids = {run.rule_id for run in runs}
    rules = {rule.pk: rule for rule in _rules(Rule.objects.filter(pk__in=rule_ids))}
    enabled = set(Rule.objects.filter(pk__in=rule_ids, enabled=True).values_list("pk", flat=True))
    deals = {
        deal.pk: deal
        for deal in Opportunity.objects.select_related("stage", "contact", "assigned_to")
        .filter(LIVE, pk__in={run.opportunity_id for run in runs})
        .order_by()
    }
    stopped, to_run = [], []
    for run in runs:
        rule = rules[run.rule_id]
        stop = _precheck(run, rule, deals.get(run.opportunity_id), rule.pk in enabled)
        if stop:
            stopped.append((run, stop))
        else:
            to_run.append(run)
    # Runs that stop early share few distinct results: one UPDATE per result, only for
    # runs still pending (another worker may have taken one meanwhile).
    groups: dict[tuple, list[int]] = {}
    for run, (outcome, detail) in stopped:
        gone = run.opportunity_id not in deals
        groups.setdefault((outcome, detail, gone), []).append(run.pk)
    for (outcome, detail, gone), ids in groups.items():
        fields = {
            "outcome": outcome,
            "results": [{"outcome": outcome, "detail": detail}],
            "finished_at": timezone.now(),
        }
        if gone:
            fields["opportunity"] = None
        RuleRun.objects.filter(pk__in=ids, outcome=Outcome.PENDING).update(**fields)
    for run in to_run:
        try:
            with transaction.atomic():
                # Several workers on PostgreSQL: each run is taken by one of them.
                claimed = (
                    RuleRun.objects.select_for_update(skip_locked=True)
                    .filter(pk=run.pk, outcome=Outcome.PENDING)
                    .first()
                )
                if claimed is not None:
                    execute(claimed, rules[run.rule_id])
        except Exception as exc:
            # Rolled back; logged as failed so one broken run never blocks the queue.
            logger.exception("Automation run %s failed", run.pk)
            detail = f"failed: {type(exc).__name__}: {exc}"[:500]
            RuleRun.objects.filter(pk=run.pk, outcome=Outcome.PENDING).update(
                outcome=Outcome.FAILED,
                results=[{"outcome": Outcome.FAILED, "detail": detail}],
                finished_at=timezone.now(),
            )
    return len(runs)


def consume(events: Iterable) -> int:
    """Queue a run of every matching enabled rule for each event (the pump's consumer).

    Runs in the pump's transaction and only writes pending RuleRun rows and one task:
    the actions themselves run on the worker (`run_pending`). Returns the runs queued.
    """
    events = list(events)
    if not events:
        return 0
    rules = enabled_rules()
    wanted = {TRIGGER_EVENT_TYPES[rule.trigger] for rule in rules}
    events = [event for event in events if event.type in wanted]
    if not events:
        return 0
    ids = [event.id for event in events]
    chains = dict(CausedEvent.objects.filter(event_id__in=ids).values_list("event_id", "chain"))
    runs = [
        RuleRun(
            rule=rule,
            event_id=event.id,
            opportunity_id=event.opportunity_id,
            chain=chains.get(event.id, []),
            outcome=Outcome.PENDING,
        )
        for event in events
        for rule in rules
        if rule_matches(rule, event)
    ]
    if not runs:
        return 0
    # Opportunities deleted since: their runs would break the foreign key.
    alive = set(
        Opportunity.objects.filter(pk__in={run.opportunity_id for run in runs}).values_list(
            "pk", flat=True
        )
    )
    runs = [run for run in runs if run.opportunity_id in alive]
    created = RuleRun.objects.bulk_create(runs, ignore_conflicts=True, batch_size=500)
    if created:
        from automation.tasks import run_automation

        run_automation.enqueue()
    return len(created)


def stale_opportunities(*, days: int | None, now=None):
    """Live deals that rot: the one definition, `opportunities.selectors.rotting_condition`
    (open, no stage change for `days`, or for its stage's rotting days when None)."""
    return Opportunity.objects.filter(LIVE).filter(rotting_condition(now=now, days=days))


def stale_candidates(rule: Rule, *, now=None):
    """(id, stage_entered_at) of the deals `rule` has not handled in their current stay."""
    candidates = stale_opportunities(days=rule.stale_days, now=now)
    if rule.pipeline_id:
        candidates = candidates.filter(pipeline_id=rule.pipeline_id)
    already = RuleRun.objects.filter(
        rule=rule, opportunity=OuterRef("pk"), stale_since=OuterRef("stage_entered_at")
    )
    return (
        candidates.filter(~Q(Exists(already)))
        .order_by("stage_entered_at", "id")
        .values_list("pk", "stage_entered_at")
    )


def stale_check(now=None) -> int:
    """Run the enabled "stale" rules on deals that rotted; each deal once per stage stay.

    A periodic job on the worker: one query per stale rule finds the deals not handled
    yet (an anti-join on the run log's unique index), then their runs execute here.
    """
    count = 0
    for rule in enabled_rules(Trigger.STALE):
        for pk, since in stale_candidates(rule, now=now)[:STALE_BATCH]:
            run = _claim(rule, opportunity_id=pk, stale_since=since)
            if run is not None:
                execute(run, rule)
                count += 1
    return count


def prune_caused_events() -> int:
    """Forget the causes of events the event log no longer holds (a daily job)."""
    oldest = OpportunityEvent.objects.order_by("id").values_list("id", flat=True).first()
    stale = (
        CausedEvent.objects.all()
        if oldest is None
        else CausedEvent.objects.filter(event_id__lt=oldest)
    )
    deleted, _ = stale.delete()
    return deleted
