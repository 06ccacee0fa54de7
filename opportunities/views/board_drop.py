"""The drag endpoint's form: MoveForm without its stage query.

`opportunity_drop` reads the target stage with the card, in the same query; a stage of
another pipeline, or none, is refused there with a message.
"""

from django import forms

from opportunities.forms import MoveForm

NO_STAGE = "That stage does not exist any more."


class DropForm(MoveForm):
    stage = forms.IntegerField(
        min_value=1,
        max_value=2**63 - 1,
        error_messages={
            "required": "Choose a stage.",
            "invalid": NO_STAGE,
            "min_value": NO_STAGE,
            "max_value": NO_STAGE,
        },
    )
