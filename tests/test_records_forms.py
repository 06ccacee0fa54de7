"""Validation messages of the record forms."""

import pytest

from opportunities.forms_records import (
    CommunicationForm,
    ContactForm,
    OpportunityCreateForm,
    OpportunityEditForm,
    QuickAddForm,
    validate_phone,
)
from opportunities.models import Status
from tests import factories

pytestmark = pytest.mark.django_db


def _contact_errors(**data):
    data = {f"contact-{key}": value for key, value in data.items()}
    form = ContactForm(data, user=factories.manager())
    form.is_valid()
    return form.errors


@pytest.mark.parametrize(
    "phone", ["+1 (555) 010-2030", "555.010.2030", "0049 30 1234567", "1234567"]
)
def test_phone_accepts_usual_notations(phone):
    validate_phone(phone)


def test_phone_with_letters_says_which_characters_are_allowed():
    errors = _contact_errors(name="Ann", phone="555-CALL-NOW")
    assert errors["phone"] == ["Use digits, spaces and + - ( ) . only, like +1 (555) 010-2030."]


def test_phone_with_too_few_digits_says_how_many_are_needed():
    errors = _contact_errors(name="Ann", phone="12-34")
    assert errors["phone"] == ["A phone number has 7 to 20 digits; this one has 4."]


def test_phone_with_too_many_digits_is_refused():
    errors = _contact_errors(name="Ann", phone="1" * 21)
    assert "7 to 20 digits" in errors["phone"][0]


def test_email_must_look_like_an_address():
    errors = _contact_errors(name="Ann", email="ann-at-example")
    assert errors["email"] == ["Enter a valid email address, like name@example.com."]


def test_contact_details_need_a_name():
    errors = _contact_errors(email="ann@example.com")
    assert errors["name"] == ["Give the contact a name."]


def test_blank_contact_block_is_valid_and_means_no_contact():
    form = ContactForm({}, user=factories.manager())
    assert form.is_valid()
    assert form.picked is None
    assert not any(form.details.values())


def _edit_data(opportunity, **overrides):
    data = {
        "name": opportunity.name,
        "value": str(opportunity.value),
        "source": opportunity.source,
        "assigned_to": "",
        "stage": str(opportunity.stage_id),
        "status": opportunity.status,
        "lost_reason": "",
        "version": str(opportunity.version),
    }
    data.update(overrides)
    return data


def test_negative_value_has_a_clear_message():
    opportunity = factories.OpportunityFactory()
    form = OpportunityEditForm(_edit_data(opportunity, value="-5"), instance=opportunity)
    assert form.errors["value"] == ["The value cannot be negative."]


def test_value_that_is_not_a_number_has_a_clear_message():
    opportunity = factories.OpportunityFactory()
    form = OpportunityEditForm(_edit_data(opportunity, value="lots"), instance=opportunity)
    assert form.errors["value"] == ["Enter the value as a number, like 12500 or 12500.50."]


def test_lost_without_reason_asks_for_one():
    opportunity = factories.OpportunityFactory()
    form = OpportunityEditForm(_edit_data(opportunity, status=Status.LOST), instance=opportunity)
    assert form.errors["lost_reason"] == ["Choose why this opportunity was lost."]


def test_edit_form_offers_only_stages_of_the_opportunity_pipeline():
    opportunity = factories.OpportunityFactory()
    foreign = factories.StageFactory()
    form = OpportunityEditForm(_edit_data(opportunity, stage=str(foreign.pk)), instance=opportunity)
    assert form.errors["stage"] == ["That stage is not part of this pipeline."]


def test_edit_form_drops_the_reason_unless_lost():
    opportunity = factories.OpportunityFactory()
    reason = factories.LostReasonFactory()
    form = OpportunityEditForm(
        _edit_data(opportunity, lost_reason=str(reason.pk)), instance=opportunity
    )
    assert form.is_valid(), form.errors
    assert form.cleaned_data["lost_reason"] is None


def test_create_form_refuses_a_stage_of_another_pipeline():
    pipeline, _ = factories.pipeline_with_stages(names=("A",))
    _, other_stages = factories.pipeline_with_stages(names=("B",))
    form = OpportunityCreateForm(
        {
            "name": "X",
            "pipeline": pipeline.pk,
            "stage": other_stages[0].pk,
            "status": Status.OPEN,
            "value": "0",
        }
    )
    assert form.errors["stage"] == [f"That stage is not part of the “{pipeline}” pipeline."]


def test_quick_add_needs_a_name():
    form = QuickAddForm({"name": "", "value": "10"})
    assert form.errors["name"] == ["Give the opportunity a name."]


def test_quick_add_refuses_a_negative_value():
    form = QuickAddForm({"name": "Deal", "value": "-1"})
    assert form.errors["value"] == ["The value cannot be negative."]


def test_quick_add_value_is_optional():
    form = QuickAddForm({"name": "Deal"})
    assert form.is_valid()
    assert form.cleaned_data["value"] is None


def test_communication_in_the_future_is_refused():
    form = CommunicationForm({"kind": "call", "summary": "x", "occurred_at": "2999-01-01T10:00"})
    assert form.errors["occurred_at"] == ["That time is in the future; log what already happened."]


def test_communication_needs_a_summary():
    form = CommunicationForm({"kind": "call", "summary": ""})
    assert form.errors["summary"] == ["Say briefly what was discussed."]
