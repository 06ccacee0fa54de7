from django import forms

from automation import placeholders


class ContactEmailForm(forms.Form):
    subject = forms.CharField(max_length=200)
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}))

    def clean_subject(self):
        placeholders.check(self.cleaned_data["subject"])
        return self.cleaned_data["subject"]

    def clean_body(self):
        placeholders.check(self.cleaned_data["body"])
        return self.cleaned_data["body"]


class EmailSettingForm(forms.Form):
    email = forms.BooleanField(required=False, label="Also e-mail me my notifications")
