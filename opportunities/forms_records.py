"""Forms of the opportunity record: the deal, its contact, notes, tasks, communication."""

import re
from datetime import timedelta
from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from opportunities.filters import active_users
from opportunities.models import (
    Communication,
    CommunicationKind,
    Contact,
    LostReason,
    Note,
    Opportunity,
    Status,
    Task,
)
from opportunities.selectors import contacts_visible_to, users_who_can_see
from pipelines.models import Pipeline, Stage

PHONE_CHARACTERS = re.compile(r"^[0-9 +\-().]+$")
PHONE_DIGITS = (7, 20)
VALUE_NOT_NEGATIVE = "The value cannot be negative."
SOURCE_LIST_ID = "source-options"


def validate_phone(value: str) -> None:
    if not PHONE_CHARACTERS.match(value):
        raise ValidationError(
            "Use digits, spaces and + - ( ) . only, like +1 (555) 010-2030.", code="characters"
        )
    digits = sum(char.isdigit() for char in value)
    low, high = PHONE_DIGITS
    if not low <= digits <= high:
        raise ValidationError(
            f"A phone number has {low} to {high} digits; this one has {digits}.", code="digits"
        )


class OwnerChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, user) -> str:
        return user.get_full_name() or user.get_username()


class StageChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, stage) -> str:
        return stage.name


class ParseOnlyModelForm(forms.ModelForm):
    """A model form that only parses and checks its fields.

    The services build, validate and save the rows; so the instance a form is given
    (for its initial values) is never changed by validating the form.
    """

    def _post_clean(self):
        pass


class ContactForm(ParseOnlyModelForm):
    """The contact block of the record form (prefix "contact").

    A hidden `id` says which existing contact the details belong to; without it, a
    name creates a new contact, and all fields blank means "no contact". Only contacts
    the user can see (`contacts_visible_to`) are accepted: picking another rep's
    contact by its id would let its details be overwritten.
    """

    id = forms.ModelChoiceField(
        queryset=Contact.objects.none(),
        required=False,
        widget=forms.HiddenInput,
        error_messages={"invalid_choice": "That contact no longer exists; pick another."},
    )

    class Meta:
        model = Contact
        fields = ["name", "email", "phone", "company"]
        labels = {"name": "Contact name"}
        error_messages = {
            "email": {"invalid": "Enter a valid email address, like name@example.com."},
        }
        widgets = {
            "email": forms.EmailInput(attrs={"autocomplete": "off"}),
            "phone": forms.TextInput(attrs={"type": "tel", "autocomplete": "off"}),
            "name": forms.TextInput(attrs={"autocomplete": "off"}),
        }

    def __init__(self, *args, user, **kwargs):
        kwargs.setdefault("prefix", "contact")
        super().__init__(*args, **kwargs)
        self.fields["id"].queryset = contacts_visible_to(user)
        for name in ("name", "email", "phone", "company"):
            self.fields[name].required = False
        self.fields["phone"].validators.append(validate_phone)
        if self.instance.pk and not self.is_bound:
            self.initial["id"] = self.instance.pk

    def clean(self):
        cleaned = super().clean()
        details = [cleaned.get(key) for key in ("email", "phone", "company")]
        if not cleaned.get("name") and (cleaned.get("id") or any(details)):
            self.add_error("name", "Give the contact a name.")
        return cleaned

    @property
    def picks_an_unknown_contact(self) -> bool:
        """An id was sent that is no contact this user can see (or none at all)."""
        return self.has_error("id", "invalid_choice")

    @property
    def picked(self) -> Contact | None:
        return self.cleaned_data.get("id")

    @property
    def details(self) -> dict:
        keys = ("name", "email", "phone", "company")
        return {key: self.cleaned_data.get(key) or "" for key in keys}


class OpportunityFormBase(ParseOnlyModelForm):
    value = forms.DecimalField(
        min_value=0,
        max_digits=14,
        decimal_places=2,
        initial=Decimal(0),
        error_messages={
            "min_value": VALUE_NOT_NEGATIVE,
            "invalid": "Enter the value as a number, like 12500 or 12500.50.",
            "max_digits": "That value is too large.",
            "max_decimal_places": "Use at most two decimals (cents).",
        },
        widget=forms.NumberInput(attrs={"min": "0", "step": "0.01", "inputmode": "decimal"}),
    )
    assigned_to = OwnerChoiceField(queryset=active_users(), required=False, label="Owner")
    stage = StageChoiceField(
        queryset=Stage.objects.none(),
        error_messages={"invalid_choice": "That stage is not part of this pipeline."},
    )
    lost_reason = forms.ModelChoiceField(
        queryset=LostReason.objects.none(),
        required=False,
        empty_label="Choose a reason…",
        error_messages={"invalid_choice": "Choose one of the listed reasons."},
    )

    class Meta:
        model = Opportunity
        fields = ["name", "value", "source", "assigned_to", "stage", "status", "lost_reason"]
        widgets = {"source": forms.TextInput(attrs={"list": SOURCE_LIST_ID, "autocomplete": "off"})}
        help_texts = {"source": "Pick one in use or type a new one."}

    def __init__(self, *args, pipeline: Pipeline | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["assigned_to"].queryset = active_users()
        reasons = Q(is_active=True)
        if self.instance.lost_reason_id:
            reasons |= Q(pk=self.instance.lost_reason_id)  # keep a retired reason selectable
        self.fields["lost_reason"].queryset = LostReason.objects.filter(reasons)
        pipeline = pipeline or (self.instance.pipeline if self.instance.pipeline_id else None)
        if pipeline is not None:
            self.fields["stage"].queryset = pipeline.stages.order_by("position", "id")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("status") == Status.LOST and not cleaned.get("lost_reason"):
            self.add_error("lost_reason", "Choose why this opportunity was lost.")
        if cleaned.get("status") != Status.LOST:
            cleaned["lost_reason"] = None
        return cleaned


class OpportunityEditForm(OpportunityFormBase):
    """The record's details. `version` is the optimistic lock the page was rendered with."""

    version = forms.IntegerField(min_value=1, max_value=2**31 - 1, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        # Distinct ids: the record also opens inside the board, next to its filter form.
        kwargs.setdefault("auto_id", "deal_%s")
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["version"] = self.instance.version


class OpportunityCreateForm(OpportunityFormBase):
    """The full "new opportunity" form: stages are grouped by pipeline."""

    pipeline = forms.ModelChoiceField(
        queryset=Pipeline.objects.filter(is_archived=False),
        empty_label="Choose a pipeline…",
        error_messages={"invalid_choice": "Choose one of the listed pipelines."},
    )

    class Meta(OpportunityFormBase.Meta):
        fields = ["name", "pipeline", "stage", "status", "lost_reason", "value", "source"]
        fields += ["assigned_to"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["stage"].queryset = Stage.objects.filter(
            pipeline__is_archived=False
        ).select_related("pipeline")
        self.fields["stage"].error_messages["invalid_choice"] = "Choose one of the listed stages."

    @property
    def stage_groups(self) -> list[tuple[Pipeline, list[Stage]]]:
        """Stages grouped under their pipeline, for the <optgroup>s of the stage select."""
        groups: dict[int, tuple[Pipeline, list[Stage]]] = {}
        for stage in self.fields["stage"].queryset.order_by(
            "pipeline__position", "pipeline_id", "position", "id"
        ):
            groups.setdefault(stage.pipeline_id, (stage.pipeline, []))[1].append(stage)
        return list(groups.values())

    def clean(self):
        cleaned = super().clean()
        pipeline, stage = cleaned.get("pipeline"), cleaned.get("stage")
        if pipeline and stage and stage.pipeline_id != pipeline.pk:
            self.add_error("stage", f"That stage is not part of the “{pipeline}” pipeline.")
        return cleaned


class QuickAddForm(forms.Form):
    """The one-line form at the top of a board column."""

    name = forms.CharField(
        max_length=200,
        error_messages={"required": "Give the opportunity a name."},
        widget=forms.TextInput(attrs={"placeholder": "Opportunity name", "autocomplete": "off"}),
    )
    contact_name = forms.CharField(
        max_length=200,
        required=False,
        label="Contact",
        widget=forms.TextInput(attrs={"placeholder": "Contact name", "autocomplete": "off"}),
    )
    value = forms.DecimalField(
        min_value=0,
        max_digits=14,
        decimal_places=2,
        required=False,
        error_messages={
            "min_value": VALUE_NOT_NEGATIVE,
            "invalid": "Enter the value as a number, like 12500.",
            "max_digits": "That value is too large.",
            "max_decimal_places": "Use at most two decimals (cents).",
        },
        widget=forms.NumberInput(
            attrs={"placeholder": "Value", "min": "0", "step": "0.01", "inputmode": "decimal"}
        ),
    )


class NoteForm(ParseOnlyModelForm):
    class Meta:
        model = Note
        fields = ["body"]
        labels = {"body": "Note"}
        error_messages = {"body": {"required": "Write something before saving the note."}}
        widgets = {"body": forms.Textarea(attrs={"rows": 3, "placeholder": "Write a note…"})}

    def __init__(self, *args, **kwargs):
        editing = kwargs.get("instance") is not None
        kwargs.setdefault("auto_id", "note_edit_%s" if editing else "note_%s")
        super().__init__(*args, **kwargs)

    def clean_body(self):
        body = self.cleaned_data["body"].strip()
        if not body:
            raise ValidationError("Write something before saving the note.")
        return body


class TaskForm(ParseOnlyModelForm):
    """A task on one opportunity; only people who can see that opportunity may be assigned
    (anyone else would never find the task in "My tasks")."""

    assigned_to = OwnerChoiceField(
        queryset=get_user_model().objects.none(),
        required=False,
        label="Assignee",
        error_messages={"invalid_choice": "Choose someone who can see this opportunity."},
    )

    class Meta:
        model = Task
        fields = ["title", "due_on", "assigned_to"]
        labels = {"due_on": "Due"}
        error_messages = {
            "title": {"required": "Give the task a title."},
            "due_on": {"invalid": "Enter a date like 2026-12-31."},
        }
        widgets = {
            "title": forms.TextInput(attrs={"placeholder": "Call back, send proposal…"}),
            "due_on": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        }

    def __init__(self, *args, opportunity: Opportunity, **kwargs):
        kwargs.setdefault("auto_id", "task_%s")
        super().__init__(*args, **kwargs)
        self.fields["assigned_to"].queryset = users_who_can_see(opportunity)
        if not self.is_bound:
            self.initial["assigned_to"] = opportunity.assigned_to_id


class CommunicationForm(ParseOnlyModelForm):
    kind = forms.ChoiceField(
        label="Type",
        choices=CommunicationKind.choices,
        initial=CommunicationKind.CALL,
        error_messages={"invalid_choice": "Choose call, email, meeting or message."},
    )
    occurred_at = forms.DateTimeField(
        label="When",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
        error_messages={"invalid": "Enter a date and time like 2026-12-31 14:30."},
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )

    class Meta:
        model = Communication
        fields = ["kind", "summary", "occurred_at"]
        labels = {"kind": "Type"}
        error_messages = {"summary": {"required": "Say briefly what was discussed."}}
        widgets = {
            "summary": forms.Textarea(attrs={"rows": 2, "placeholder": "What was discussed?"})
        }

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "comm_%s")
        super().__init__(*args, **kwargs)
        if not self.is_bound:
            self.initial["occurred_at"] = timezone.localtime().replace(second=0, microsecond=0)

    def clean_occurred_at(self):
        moment = self.cleaned_data.get("occurred_at")
        if moment and moment > timezone.now() + timedelta(minutes=5):
            raise ValidationError("That time is in the future; log what already happened.")
        return moment
