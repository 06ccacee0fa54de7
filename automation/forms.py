from django import forms
from django.contrib.auth import get_user_model
from django.forms import inlineformset_factory

from automation import placeholders
from automation.models import Action, Condition, EmailTemplate, Rule


class ContactEmailForm(forms.Form):
    """Free text, or a template: a chosen template fills what is left empty."""

    template = forms.ModelChoiceField(
        EmailTemplate.objects.all(), required=False, empty_label="Free text"
    )
    subject = forms.CharField(max_length=200, required=False)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False)

    def clean(self):
        data = super().clean()
        template = data.get("template")
        if template is not None:
            data["subject"] = data.get("subject") or template.subject
            data["body"] = data.get("body") or template.body
        if not data.get("subject"):
            self.add_error("subject", "Give the e-mail a subject (or choose a template).")
        if not data.get("body"):
            self.add_error("body", "Write the message (or choose a template).")
        return data

    def clean_subject(self):
        placeholders.check(self.cleaned_data["subject"])
        return self.cleaned_data["subject"]

    def clean_body(self):
        placeholders.check(self.cleaned_data["body"])
        return self.cleaned_data["body"]


class EmailSettingForm(forms.Form):
    email = forms.BooleanField(required=False, label="Also e-mail me my notifications")


class RuleForm(forms.ModelForm):
    class Meta:
        model = Rule
        fields = [
            "name",
            "pipeline",
            "enabled",
            "position",
            "trigger",
            "stage",
            "status",
            "stale_days",
            "acting_user",
        ]

    def __init__(self, *args, editor=None, **kwargs):
        super().__init__(*args, **kwargs)
        users = get_user_model().objects.filter(is_active=True)
        # A rule acts with its user's rights: a manager cannot borrow a superuser's.
        if editor is not None and not editor.is_superuser:
            users = users.filter(is_superuser=False)
        self.fields["acting_user"].queryset = users
        self.fields["stage"].queryset = self.fields["stage"].queryset.select_related("pipeline")


ConditionFormSet = inlineformset_factory(
    Rule,
    Condition,
    fields=["kind", "value", "custom_field", "user", "group"],
    extra=1,
    can_delete=True,
)


class ActionForm(forms.ModelForm):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["webhook"].label_from_instance = webhook_label


def webhook_label(subscription) -> str:
    """Switched-off endpoints stay listed (a saved rule may point to one), marked so."""
    name = subscription.description or subscription.url
    return name if subscription.is_active else f"{name} (switched off)"


ActionFormSet = inlineformset_factory(
    Rule,
    Action,
    form=ActionForm,
    fields=[
        "position",
        "kind",
        "recipient",
        "user",
        "group",
        "title",
        "body",
        "due_in_days",
        "stage",
        "status",
        "lost_reason",
        "webhook",
    ],
    extra=1,
    can_delete=True,
)
