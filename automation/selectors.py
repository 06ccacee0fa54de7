"""Reads of the automation app."""

from django.db.models import Prefetch, QuerySet

from automation.models import Action, Condition, Rule, RuleRun


def runs_for_opportunity(opportunity, limit: int = 20) -> list[RuleRun]:
    """What automation did on one deal, newest first (for its record and timeline)."""
    return list(
        RuleRun.objects.filter(opportunity=opportunity)
        .exclude(outcome="skipped")
        .select_related("rule")
        .order_by("-id")[:limit]
    )


def rules_for_settings() -> QuerySet[Rule]:
    return Rule.objects.select_related("pipeline", "stage", "acting_user").prefetch_related(
        Prefetch("actions", queryset=Action.objects.select_related("webhook")),
        Prefetch(
            "conditions",
            queryset=Condition.objects.select_related("user", "group", "custom_field"),
        ),
    )


def recent_runs(limit: int = 30) -> list[RuleRun]:
    return list(RuleRun.objects.select_related("rule", "opportunity").order_by("-id")[:limit])
