"""Creating opportunities."""

from decimal import Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from opportunities.models import (
    CLOSED_STATUSES,
    Contact,
    LostReason,
    Opportunity,
    Status,
)
from opportunities.services.history import history_record
from opportunities.services.moves import rank_for_drop
from pipelines.models import Pipeline, Stage


@transaction.atomic
def opportunity_create(
    *,
    user,
    name: str,
    pipeline: Pipeline,
    stage: Stage | None = None,
    value: Decimal | int | str = 0,
    contact: Contact | None = None,
    source: str = "",
    assigned_to=None,
    status: str = Status.OPEN,
    lost_reason: LostReason | None = None,
) -> Opportunity:
    """Create an opportunity at the top of its stage's column.

    Invariants: the stage belongs to the pipeline (default: the pipeline's first stage);
    a lost reason iff Lost; a history row records where the opportunity started.
    """
    if stage is None:
        stage = pipeline.stages.order_by("position", "id").first()
        if stage is None:
            raise ValidationError({"stage": f"The pipeline “{pipeline}” has no stages yet."})
    if stage.pipeline_id != pipeline.pk:
        raise ValidationError({"stage": "That stage belongs to another pipeline."})
    if status == Status.LOST and lost_reason is None:
        raise ValidationError({"lost_reason": "Choose why this opportunity was lost."})
    if status != Status.LOST:
        lost_reason = None

    now = timezone.now()
    opportunity = Opportunity(
        name=name,
        pipeline=pipeline,
        stage=stage,
        value=value,
        contact=contact,
        source=source.strip(),
        assigned_to=assigned_to,
        status=status,
        lost_reason=lost_reason,
        rank=rank_for_drop(stage),
        stage_entered_at=now,
        status_changed_at=now if status != Status.OPEN else None,
        closed_at=now if status in CLOSED_STATUSES else None,
        created_at=now,
        updated_at=now,
    )
    opportunity.full_clean()
    opportunity.save(force_insert=True)
    history_record(
        opportunity=opportunity,
        user=user,
        from_stage_id=None,
        to_stage_id=stage.pk,
        from_status="",
        to_status=status,
        at=now,
    )
    return opportunity


def contact_create(*, name: str, email: str = "", phone: str = "", company: str = "") -> Contact:
    contact = Contact(
        name=name.strip(), email=email.strip(), phone=phone.strip(), company=company.strip()
    )
    contact.full_clean()
    contact.save()
    return contact
