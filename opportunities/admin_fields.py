"""Admin for what admins define for deals: custom fields and tags.

Imported by opportunities/admin.py. Values of custom fields are written only through
the services (the record, import, API); here admins shape the fields themselves.
"""

import re

from django import forms
from django.contrib import admin
from django.db.models import Count
from django.db.models.functions import Lower

from opportunities.models import CustomField, CustomFieldType, Tag

CHOICE_TYPES = {CustomFieldType.SINGLE_CHOICE, CustomFieldType.MULTIPLE_CHOICE}
MAX_CHOICES = 100
HEX_COLOUR = re.compile(r"^#[0-9a-fA-F]{6}$")


class ChoicesField(forms.CharField):
    """The options of a choice field, one per line (stored as a JSON list)."""

    widget = forms.Textarea(attrs={"rows": 6, "cols": 40})

    def prepare_value(self, value):
        if isinstance(value, list):
            return "\n".join(str(item) for item in value)
        return value

    def to_python(self, value):
        lines = [" ".join(line.split()) for line in str(value or "").splitlines()]
        options, seen = [], set()
        for line in lines:
            if line and line.lower() not in seen:
                seen.add(line.lower())
                options.append(line)
        return options


class CustomFieldForm(forms.ModelForm):
    choices = ChoicesField(
        required=False,
        help_text="For single and multiple choice fields: one option per line, in order.",
    )

    class Meta:
        model = CustomField
        fields = ["name", "key", "field_type", "required", "choices", "pipelines", "position"]
        fields += ["is_active"]
        help_texts = {
            "key": "Lowercase letters, digits, - and _ (e.g. deal_region). Import and the API "
            "use it; changing it breaks integrations that use the old key.",
            "pipelines": "None chosen: the field is on every pipeline's deals.",
        }

    def clean_key(self):
        key = self.cleaned_data["key"].strip().lower()
        clash = CustomField.objects.filter(key__iexact=key).exclude(pk=self.instance.pk)
        if clash.exists():
            raise forms.ValidationError("Another custom field already uses this key.")
        return key

    def clean(self):
        cleaned = super().clean()
        kind, options = cleaned.get("field_type"), cleaned.get("choices") or []
        if kind in CHOICE_TYPES and not options:
            self.add_error("choices", "A choice field needs at least one option, one per line.")
        elif kind in CHOICE_TYPES and len(options) > MAX_CHOICES:
            self.add_error("choices", f"At most {MAX_CHOICES} options.")
        elif kind and kind not in CHOICE_TYPES:
            cleaned["choices"] = []
        for option in options:
            if len(option) > 100:
                self.add_error("choices", f"“{option[:30]}…” is longer than 100 characters.")
                break
        return cleaned


@admin.register(CustomField)
class CustomFieldAdmin(admin.ModelAdmin):
    form = CustomFieldForm
    list_display = ["name", "key", "field_type", "required", "pipeline_names", "position"]
    list_display += ["is_active"]
    list_editable = ["position", "is_active"]
    list_filter = ["field_type", "is_active", "required", "pipelines"]
    search_fields = ["name", "key"]
    ordering = ["position", "id"]
    filter_horizontal = ["pipelines"]
    prepopulated_fields = {"key": ["name"]}

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("pipelines")

    @admin.display(description="Pipelines")
    def pipeline_names(self, field: CustomField) -> str:
        return ", ".join(p.name for p in field.pipelines.all()) or "All pipelines"


class TagForm(forms.ModelForm):
    color = forms.CharField(
        max_length=7,
        widget=forms.TextInput(attrs={"type": "color"}),
        help_text="The chip's colour on cards and records.",
    )

    class Meta:
        model = Tag
        fields = ["name", "color"]

    def clean_name(self):
        from opportunities.services.related import clean_tag_names

        name = " ".join(self.cleaned_data["name"].split())
        try:
            clean_tag_names([name])
        except forms.ValidationError as exc:
            raise forms.ValidationError(exc.message_dict["tags"]) from None
        clash = Tag.objects.annotate(lower=Lower("name")).filter(lower=name.lower())
        if clash.exclude(pk=self.instance.pk).exists():
            raise forms.ValidationError("A tag with this name already exists.")
        return name

    def clean_color(self):
        colour = self.cleaned_data["color"].strip()
        if not HEX_COLOUR.match(colour):
            raise forms.ValidationError("Enter a colour like #2563eb.")
        return colour.lower()


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    form = TagForm
    list_display = ["name", "color", "deal_count"]
    search_fields = ["name"]
    ordering = ["name", "id"]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(deals=Count("opportunities"))

    @admin.display(description="Deals", ordering="deals")
    def deal_count(self, tag: Tag) -> int:
        return tag.deals
