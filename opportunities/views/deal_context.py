"""What the record's deal-fields sections show (close date, probability, tags, custom
fields, followers, pipeline move, trash), read only when the template asks for it.

Kept apart from record_fields.py so records.record_context can use it without a cycle.
"""

from decimal import Decimal
from functools import cached_property

from opportunities.custom_fields import fields_for_pipeline
from opportunities.forms_fields import DealFieldsForm, FollowerForm, PipelineMoveForm
from opportunities.models import CustomFieldType, Opportunity
from opportunities.services.related import MAX_FOLLOWERS, custom_values_of


class DealFields:
    """What the record's deal-fields sections show; read only when the template asks."""

    def __init__(self, request, opportunity: Opportunity, *, form=None, **errors):
        self.request, self.opportunity = request, opportunity
        if form is not None:
            self.form = form  # the refused input, kept with its messages
        # follower_error, move_error: a refusal shown beside that section's form.
        self.follower_error = errors.get("follower_error")
        self.move_error = errors.get("move_error")

    @cached_property
    def custom_fields(self):
        return fields_for_pipeline(self.opportunity.pipeline_id)

    @cached_property
    def custom_values(self) -> dict:
        return custom_values_of(self.opportunity) if self.custom_fields else {}

    @cached_property
    def tags(self):
        return list(self.opportunity.tags.order_by("name"))

    @cached_property
    def followers(self):
        return list(self.opportunity.followers.order_by("first_name", "username"))

    @cached_property
    def form(self) -> DealFieldsForm:
        return DealFieldsForm(
            opportunity=self.opportunity,
            custom_fields=self.custom_fields,
            initial_custom=self.custom_values,
            initial={"tags": ", ".join(tag.name for tag in self.tags)},
        )

    @cached_property
    def follower_form(self) -> FollowerForm:
        return FollowerForm(opportunity=self.opportunity, followers=self.followers)

    @cached_property
    def move_form(self) -> PipelineMoveForm:
        return PipelineMoveForm(opportunity=self.opportunity)

    @property
    def max_followers(self) -> int:
        return MAX_FOLLOWERS

    @property
    def probability(self) -> int | None:
        """The deal's probability, else its stage's."""
        own = self.opportunity.probability
        return own if own is not None else self.opportunity.stage.probability

    @property
    def weighted_value(self) -> Decimal | None:
        if self.probability is None:
            return None
        return (self.opportunity.value * self.probability / 100).quantize(Decimal("0.01"))

    @property
    def shown_custom_values(self) -> list[tuple[str, object, str]]:
        """(name, value, type) of the pipeline's fields that have a value, for read-only views."""
        rows = []
        for custom in self.custom_fields:
            value = self.custom_values.get(custom.key)
            if value not in (None, "", []):
                if custom.field_type == CustomFieldType.MULTIPLE_CHOICE:
                    value = ", ".join(value)
                rows.append((custom.name, value, custom.field_type))
        return rows


def deal_fields_context(request, opportunity: Opportunity) -> dict:
    """Merged into the record's context (opportunities.views.records.record_context)."""
    return {
        "deal": DealFields(request, opportunity),
        "can_delete": request.user.has_perm("opportunities.delete_opportunity"),
    }
