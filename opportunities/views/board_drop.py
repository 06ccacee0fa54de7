"""The drag endpoint's fields: MoveForm's, without its stage query and without a form.

`opportunity_drop` reads the target stage with the card, in the same query; a stage of
another pipeline, or none, is refused there with a message. The fields are cleaned one by
one instead of through a Form: a Form deep-copies its fields for every request, and the
drag is the board's hottest endpoint (building one was about 4% of a drag).
"""

from django import forms

from opportunities.forms import MoveForm

NO_STAGE = "That stage does not exist any more."

# Shared by every request: cleaning reads a field and never changes it.
DROP_FIELDS = {
    "stage": forms.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        error_messages={
            "required": "Choose a stage.",
            "invalid": NO_STAGE,
            "min_value": NO_STAGE,
            "max_value": NO_STAGE,
        },
    ),
    "version": MoveForm.base_fields["version"],
    "before": MoveForm.base_fields["before"],
    "after": MoveForm.base_fields["after"],
}


def drop_cleaned(data) -> dict:
    """The drop's stage, version and neighbours from the POST `data`, as MoveForm would
    clean them. Raises ValidationError for the first field in error, with its message."""
    return {
        name: field.clean(field.widget.value_from_datadict(data, None, name))
        for name, field in DROP_FIELDS.items()
    }
