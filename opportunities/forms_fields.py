"""Forms for what a deal holds beside its main details: close date, probability, tags,
custom fields, followers, a move to another pipeline.

They only parse; the services (opportunities.services.opportunities / .related) check
and write. Custom fields are parsed by `custom_fields.parse_value`, the same parser as
import and the API, so a value means the same everywhere and gets the same message.
"""

from datetime import date
from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from opportunities.custom_fields import fields_for_pipeline, parse_value
from opportunities.models import CustomField, CustomFieldType
from opportunities.services.related import MAX_FOLLOWERS, clean_tag_names
from pipelines.models import Stage

CUSTOM_PREFIX = "cf_"
DATE_INPUT = {"type": "date", "min": "2000-01-01", "max": "2999-12-31"}
CLOSE_DATE_RANGE = "Enter a close date between 2000 and 2999, like 2026-12-31."


def split_tags(text: str) -> list[str]:
    """'a, b; c' -> ['a', 'b', 'c'] (HighLevel files use either separator)."""
    return [part for chunk in str(text).split(";") for part in chunk.split(",")]


class CustomValueField(forms.Field):
    """One custom field of the deal's pipeline, cleaned by its type's parser."""

    def __init__(self, custom: CustomField, *, enforce: bool = True, **kwargs):
        self.custom = custom
        # False: "required" is checked by the form once it knows the pipeline.
        self.enforce = enforce
        kind = custom.field_type
        attrs = {"aria-required": "true"} if custom.required else {}
        if kind == CustomFieldType.LONG_TEXT:
            widget = forms.Textarea(attrs={"rows": 3, **attrs})
        elif kind in (CustomFieldType.NUMBER, CustomFieldType.MONEY):
            step = "0.01" if kind == CustomFieldType.MONEY else "any"
            widget = forms.NumberInput(attrs={"step": step, "inputmode": "decimal", **attrs})
        elif kind == CustomFieldType.DATE:
            widget = forms.DateInput(attrs={**DATE_INPUT, **attrs}, format="%Y-%m-%d")
        elif kind == CustomFieldType.SINGLE_CHOICE:
            options = [("", "—"), *((option, option) for option in custom.choices)]
            widget = forms.Select(choices=options, attrs=attrs)
        elif kind == CustomFieldType.MULTIPLE_CHOICE:
            options = [(option, option) for option in custom.choices]
            widget = forms.CheckboxSelectMultiple(choices=options)
        elif kind == CustomFieldType.CHECKBOX:
            widget = forms.CheckboxInput()
        elif kind == CustomFieldType.URL:
            widget = forms.URLInput(attrs={"placeholder": "https://…", **attrs})
        else:
            widget = forms.TextInput(attrs={"maxlength": "255", **attrs})
        super().__init__(
            required=False, label=custom.name, widget=widget, label_suffix="", **kwargs
        )

    @property
    def is_multiple(self) -> bool:
        return self.custom.field_type == CustomFieldType.MULTIPLE_CHOICE

    def clean(self, value):
        if not self.enforce and value in (None, "", []):
            return None
        return parse_value(self.custom, value)

    @property
    def pipeline_names(self) -> str:
        return ", ".join(p.name for p in self.custom.pipelines.all())


class DealFieldsForm(forms.Form):
    """Close date, probability, tags and the pipeline's custom fields of one deal."""

    version = forms.IntegerField(min_value=1, max_value=2**31 - 1, widget=forms.HiddenInput)
    expected_close_date = forms.DateField(
        required=False,
        label="Expected close date",
        input_formats=["%Y-%m-%d", "%m/%d/%Y"],
        error_messages={"invalid": CLOSE_DATE_RANGE},
        widget=forms.DateInput(attrs=DATE_INPUT, format="%Y-%m-%d"),
    )
    probability = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=100,
        label="Probability (%)",
        error_messages={
            "invalid": "Enter a whole percentage, like 40.",
            "min_value": "Enter a percentage from 0 to 100.",
            "max_value": "Enter a percentage from 0 to 100.",
        },
        widget=forms.NumberInput(attrs={"min": "0", "max": "100", "step": "1"}),
    )
    tags = forms.CharField(
        required=False,
        max_length=1100,
        label="Tags",
        help_text="Separate tags with commas; new ones are created.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "vip, renewal"}),
    )

    def __init__(self, *args, opportunity, custom_fields=None, initial_custom=None, **kwargs):
        kwargs.setdefault("auto_id", "dealf_%s")
        super().__init__(*args, **kwargs)
        self.opportunity = opportunity
        stage_probability = opportunity.stage.probability
        self.fields["probability"].widget.attrs["placeholder"] = (
            f"{stage_probability} (stage)" if stage_probability is not None else "—"
        )
        self.fields["probability"].help_text = (
            f"Empty: the stage's {stage_probability} %."
            if stage_probability is not None
            else "Empty: the stage has no probability."
        )
        if custom_fields is None:
            custom_fields = fields_for_pipeline(opportunity.pipeline_id)
        for custom in custom_fields:
            self.fields[CUSTOM_PREFIX + custom.key] = CustomValueField(custom)
        if not self.is_bound:
            self.initial["version"] = opportunity.version
            self.initial["expected_close_date"] = opportunity.expected_close_date
            self.initial["probability"] = opportunity.probability
            for key, value in (initial_custom or {}).items():
                if isinstance(value, Decimal):
                    value = format(value.normalize(), "f")  # 25.0000 shows as 25
                self.initial[CUSTOM_PREFIX + key] = value

    @property
    def custom_bound_fields(self):
        return [self[name] for name in self.fields if name.startswith(CUSTOM_PREFIX)]

    def clean_expected_close_date(self):
        value = self.cleaned_data.get("expected_close_date")
        if value is not None and not date(2000, 1, 1) <= value <= date(2999, 12, 31):
            raise ValidationError(CLOSE_DATE_RANGE)
        return value

    def clean_tags(self):
        try:
            return clean_tag_names(split_tags(self.cleaned_data.get("tags", "")))
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["tags"]) from None

    @property
    def custom_values(self) -> dict:
        """{key: parsed value} of every custom field on the form (None clears one)."""
        return {
            name[len(CUSTOM_PREFIX) :]: value
            for name, value in self.cleaned_data.items()
            if name.startswith(CUSTOM_PREFIX)
        }


class FollowerForm(forms.Form):
    """Add or remove one follower (the service gets the whole new list)."""

    version = forms.IntegerField(min_value=1, max_value=2**31 - 1, widget=forms.HiddenInput)
    add = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(),
        required=False,
        label="Add a follower",
        empty_label="Choose a person…",
        error_messages={"invalid_choice": "Choose one of the listed people."},
    )
    remove = forms.ModelChoiceField(
        queryset=get_user_model().objects.none(),
        required=False,
        error_messages={"invalid_choice": "That person no longer follows this opportunity."},
    )

    def __init__(self, *args, opportunity, followers: list, **kwargs):
        kwargs.setdefault("auto_id", "follow_%s")
        super().__init__(*args, **kwargs)
        self.followers = followers
        users = get_user_model().objects.filter(is_active=True)
        self.fields["add"].queryset = users.exclude(pk__in=[f.pk for f in followers]).order_by(
            "first_name", "username"
        )
        self.fields["add"].label_from_instance = lambda u: u.get_full_name() or u.get_username()
        self.fields["remove"].queryset = get_user_model().objects.filter(
            pk__in=[f.pk for f in followers]
        )
        if not self.is_bound:
            self.initial["version"] = opportunity.version

    @property
    def is_full(self) -> bool:
        return len(self.followers) >= MAX_FOLLOWERS

    def clean(self):
        cleaned = super().clean()
        if not self.errors and not cleaned.get("add") and not cleaned.get("remove"):
            raise ValidationError("Choose a person to add.")
        return cleaned

    @property
    def new_followers(self) -> list:
        removed = self.cleaned_data.get("remove")
        kept = [f for f in self.followers if removed is None or f.pk != removed.pk]
        added = self.cleaned_data.get("add")
        return [*kept, added] if added else kept


class StageGroupChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, stage) -> str:
        return f"{stage.pipeline.name} › {stage.name}"


class PipelineMoveForm(forms.Form):
    """Move a deal to another pipeline: one select of stages grouped by pipeline."""

    version = forms.IntegerField(min_value=1, max_value=2**31 - 1, widget=forms.HiddenInput)
    stage = StageGroupChoiceField(
        queryset=Stage.objects.none(),
        label="Pipeline and stage",
        empty_label="Choose a stage…",
        error_messages={
            "required": "Choose the pipeline and stage to move to.",
            "invalid_choice": "Choose one of the listed stages.",
        },
    )

    def __init__(self, *args, opportunity, **kwargs):
        kwargs.setdefault("auto_id", "pmove_%s")
        super().__init__(*args, **kwargs)
        self.fields["stage"].queryset = (
            Stage.objects.filter(pipeline__is_archived=False)
            .exclude(pipeline_id=opportunity.pipeline_id)
            .select_related("pipeline")
            .order_by("pipeline__position", "pipeline_id", "position", "id")
        )
        if not self.is_bound:
            self.initial["version"] = opportunity.version

    def clean(self):
        cleaned = super().clean()
        stage, named = cleaned.get("stage"), self.data.get("pipeline")
        # One select sends only the stage; a client that names the pipeline too (as the
        # API does) must name the stage's own.
        if stage is not None and named and named != str(stage.pipeline_id):
            self.add_error("stage", "That stage belongs to another pipeline.")
        return cleaned

    @property
    def stage_groups(self):
        groups: dict[int, tuple] = {}
        for stage in self.fields["stage"].queryset:
            groups.setdefault(stage.pipeline_id, (stage.pipeline, []))[1].append(stage)
        return list(groups.values())


class VersionForm(forms.Form):
    version = forms.IntegerField(min_value=1, max_value=2**31 - 1, widget=forms.HiddenInput)


class NewDealExtrasForm(forms.Form):
    """The "new opportunity" form's close date and custom fields.

    Every active field is shown (the pipeline is chosen on the same form); only those of
    the chosen pipeline are kept, and only their "required" is enforced.
    """

    expected_close_date = DealFieldsForm.base_fields["expected_close_date"]

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "newf_%s")
        super().__init__(*args, **kwargs)
        self.customs = list(
            CustomField.objects.filter(is_active=True).prefetch_related("pipelines")
        )
        for custom in self.customs:
            self.fields[CUSTOM_PREFIX + custom.key] = CustomValueField(custom, enforce=False)

    clean_expected_close_date = DealFieldsForm.clean_expected_close_date

    @property
    def custom_bound_fields(self):
        return [self[name] for name in self.fields if name.startswith(CUSTOM_PREFIX)]

    def values_for(self, pipeline) -> dict:
        """{key: value} of the pipeline's fields; errors for its required ones left empty."""
        values = {}
        for custom in self.customs:
            ids = [p.pk for p in custom.pipelines.all()]
            if ids and pipeline.pk not in ids:
                continue
            name = CUSTOM_PREFIX + custom.key
            if name not in self.cleaned_data:
                continue  # already refused by its parser
            value = self.cleaned_data[name]
            if custom.required and value in (None, "", []):
                self.add_error(name, f"{custom.name} is required.")
            else:
                values[custom.key] = value
        return values
