"""The demo rules on the "Sales" pipeline (`manage.py seed_automation`, after seed_demo)."""

from django.contrib.auth import get_user_model

from automation.models import Action, ActionKind, Recipient, Rule, Trigger
from pipelines.models import Pipeline

PROPOSAL_RULE = "Proposal follow-up"
STALE_RULE = "Stale deal reminder"


def seed_demo_rules() -> list[Rule]:
    """Two enabled rules, created once (a second run changes nothing).

    They act as the demo manager, who sees every deal: entering "Proposal" creates the
    task "Send the proposal" due in 2 days for the owner; a deal 30 days without a stage
    change notifies its owner.
    """
    pipeline = Pipeline.objects.filter(name="Sales").first()
    manager = get_user_model().objects.filter(username="manager", is_active=True).first()
    if pipeline is None or manager is None:
        return []
    proposal = pipeline.stages.filter(name="Proposal").first()
    rules = []
    if proposal is not None:
        rule, created = Rule.objects.get_or_create(
            name=PROPOSAL_RULE,
            defaults={
                "pipeline": pipeline,
                "trigger": Trigger.STAGE_ENTERED,
                "stage": proposal,
                "acting_user": manager,
                "position": 1,
            },
        )
        if created:
            Action.objects.create(
                rule=rule,
                kind=ActionKind.CREATE_TASK,
                title="Send the proposal",
                due_in_days=2,
                recipient=Recipient.OWNER,
            )
        rules.append(rule)
    rule, created = Rule.objects.get_or_create(
        name=STALE_RULE,
        defaults={
            "pipeline": pipeline,
            "trigger": Trigger.STALE,
            "stale_days": 30,
            "acting_user": manager,
            "position": 2,
        },
    )
    if created:
        Action.objects.create(
            rule=rule,
            kind=ActionKind.NOTIFY,
            title="{deal} has not changed stage for 30 days",
            recipient=Recipient.OWNER,
        )
    rules.append(rule)
    return rules
