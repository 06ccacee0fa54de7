from django import forms

from opportunities.models import LostReason, Status
from pipelines.models import Stage


class MoveForm(forms.Form):
    """A drop or a "Move to stage…" submission. Neighbours are optional hints."""

    stage = forms.ModelChoiceField(
        queryset=Stage.objects.all(),
        error_messages={"invalid_choice": "That stage does not exist any more."},
    )
    version = forms.IntegerField(min_value=1, max_value=2**31 - 1)
    before = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)
    after = forms.IntegerField(required=False, min_value=1, max_value=2**63 - 1)

    def __init__(self, *args, pipeline=None, **kwargs):
        super().__init__(*args, **kwargs)
        if pipeline is not None:
            self.fields["stage"].queryset = pipeline.stages.all()
            self.fields["stage"].error_messages["invalid_choice"] = (
                "That stage is not part of this opportunity's pipeline."
            )


class StatusForm(forms.Form):
    status = forms.ChoiceField(
        choices=Status.choices,
        # Django's default message repeats the submitted value, however long it is.
        error_messages={"invalid_choice": "Choose Open, Won, Lost or Abandoned."},
    )
    version = forms.IntegerField(min_value=1, max_value=2**31 - 1)
    lost_reason = forms.ModelChoiceField(
        queryset=LostReason.objects.filter(is_active=True),
        required=False,
        empty_label="Choose a reason…",
        error_messages={"invalid_choice": "Choose one of the listed reasons."},
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("status") == Status.LOST and not cleaned.get("lost_reason"):
            self.add_error("lost_reason", "Choose why this opportunity was lost.")
        return cleaned


def first_error(form: forms.Form) -> str:
    """One readable sentence for an htmx error toast."""
    for field_name, errors in form.errors.items():
        label = form.fields[field_name].label if field_name in form.fields else None
        message = errors[0]
        if label and field_name != "__all__":
            return f"{label}: {message}"
        return message
    return "The request was not valid."
