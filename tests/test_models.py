"""The database itself refuses rows that break the invariants (no full_clean here)."""

import pytest
from django.db import IntegrityError, transaction

from opportunities.models import Opportunity, Status
from pipelines.models import Stage
from tests import factories

pytestmark = pytest.mark.django_db


def insert_opportunity(stage, **fields):
    """A plain INSERT, as raw code or a careless script would do it."""
    return Opportunity.objects.create(
        name="Raw", pipeline=stage.pipeline, stage=stage, rank="V", **fields
    )


@pytest.fixture
def stage():
    return factories.StageFactory()


def test_negative_value_is_rejected(stage):
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_opportunity(stage, value=-1)


def test_zero_value_is_accepted(stage):
    assert insert_opportunity(stage, value=0).pk


def test_lost_without_reason_is_rejected(stage):
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_opportunity(stage, status=Status.LOST)


def test_reason_without_lost_is_rejected(stage):
    reason = factories.LostReasonFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_opportunity(stage, status=Status.WON, lost_reason=reason)


def test_lost_with_reason_is_accepted(stage):
    reason = factories.LostReasonFactory()
    assert insert_opportunity(stage, status=Status.LOST, lost_reason=reason).pk


def test_unknown_status_is_rejected(stage):
    with pytest.raises(IntegrityError), transaction.atomic():
        insert_opportunity(stage, status="maybe")


def test_empty_rank_is_rejected(stage):
    with pytest.raises(IntegrityError), transaction.atomic():
        Opportunity.objects.create(name="Raw", pipeline=stage.pipeline, stage=stage, rank="")


def test_duplicate_stage_name_in_a_pipeline_is_rejected(stage):
    with pytest.raises(IntegrityError), transaction.atomic():
        Stage.objects.create(pipeline=stage.pipeline, name=stage.name)


def test_same_stage_name_in_another_pipeline_is_accepted(stage):
    other = factories.PipelineFactory()
    assert Stage.objects.create(pipeline=other, name=stage.name).pk


def test_stage_probability_over_100_is_rejected(stage):
    with pytest.raises(IntegrityError), transaction.atomic():
        Stage.objects.create(pipeline=stage.pipeline, name="Sure thing", probability=101)


def test_insert_with_stage_of_another_pipeline_is_rejected(stage):
    other = factories.PipelineFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Opportunity.objects.create(name="Raw", pipeline=other, stage=stage, rank="V")


def test_update_to_stage_of_another_pipeline_is_rejected(stage):
    opportunity = factories.OpportunityFactory(stage=stage)
    foreign_stage = factories.StageFactory()
    with pytest.raises(IntegrityError), transaction.atomic():
        Opportunity.objects.filter(pk=opportunity.pk).update(stage=foreign_stage)
    opportunity.refresh_from_db()
    assert opportunity.stage_id == stage.pk


def test_moving_pipeline_and_stage_together_is_accepted(stage):
    opportunity = factories.OpportunityFactory(stage=stage)
    elsewhere = factories.StageFactory()
    Opportunity.objects.filter(pk=opportunity.pk).update(
        pipeline=elsewhere.pipeline, stage=elsewhere
    )
    opportunity.refresh_from_db()
    assert opportunity.stage_id == elsewhere.pk


def test_rank_orders_bytewise(stage):
    # Upper case sorts before lower case bytewise; a locale collation would mix them.
    for rank in ["b", "a", "B", "A"]:
        Opportunity.objects.create(name=rank, pipeline=stage.pipeline, stage=stage, rank=rank)
    ranks = Opportunity.objects.filter(stage=stage).order_by("rank").values_list("rank", flat=True)
    assert list(ranks) == ["A", "B", "a", "b"]
