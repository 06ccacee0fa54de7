"""The record's deal fields through the views: close date, probability, tags, custom
fields, followers, a move to another pipeline, the trash; bad input changes nothing."""

from datetime import date
from decimal import Decimal

import pytest
from django.urls import reverse

from opportunities.models import (
    CustomField,
    CustomFieldValue,
    Opportunity,
    OpportunityHistory,
    Tag,
    TrackedField,
)
from opportunities.services.related import custom_values_of
from tests import factories

pytestmark = pytest.mark.django_db

HX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def stages():
    _pipeline, stages = factories.pipeline_with_stages()
    stages[0].probability = 20
    stages[0].save()
    return stages


@pytest.fixture
def owner(client):
    user = factories.rep(first_name="Riley", last_name="Rep")
    client.force_login(user)
    return user


@pytest.fixture
def deal(stages, owner):
    return factories.OpportunityFactory(stage=stages[0], assigned_to=owner, value=1000)


@pytest.fixture
def fields(stages):
    def make(key, kind, **extra):
        return CustomField.objects.create(name=key.title(), key=key, field_type=kind, **extra)

    return {
        "amount": make("amount", "number"),
        "region": make("region", "single_choice", choices=["North", "South"]),
        "products": make("products", "multiple_choice", choices=["Seats", "Support", "Add-ons"]),
        "signed": make("signed", "checkbox"),
        "renewal": make("renewal", "date"),
        "site": make("site", "url"),
        "brief": make("brief", "long_text"),
    }


def _url(name, *args):
    return reverse(f"opportunities:{name}", args=args)


def _fields_data(deal, **overrides):
    data = {
        "version": str(deal.version),
        "expected_close_date": "",
        "probability": "",
        "tags": "",
    }
    data.update(overrides)
    return data


def test_record_shows_the_deal_fields_with_the_stage_probability_as_placeholder(
    client, deal, fields
):
    html = client.get(_url("detail", deal.pk)).content.decode()
    assert "Forecast &amp; fields" in html
    assert 'placeholder="20 (stage)"' in html
    assert 'type="date"' in html and 'name="cf_renewal"' in html
    assert 'name="cf_products"' in html and 'type="checkbox"' in html
    assert "<textarea" in html and 'name="cf_brief"' in html
    assert 'type="url"' in html and "Weighted <strong>$200</strong> at 20 %" in html


def test_saving_the_deal_fields_writes_them_all(client, deal, fields):
    data = _fields_data(
        deal,
        expected_close_date="2027-03-31",
        probability="65",
        tags="VIP, renewal; vip",
        cf_amount="1,234.50",
        cf_region="south",
        cf_products=["Seats", "Support"],
        cf_signed="on",
        cf_renewal="2027-06-01",
        cf_site="https://example.com/deal",
        cf_brief="Two lines\nof text",
    )
    response = client.post(_url("fields_save", deal.pk), data, **HX)
    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.expected_close_date == date(2027, 3, 31) and deal.probability == 65
    assert set(deal.tags.values_list("name", flat=True)) == {"renewal", "VIP"}
    assert custom_values_of(deal) == {
        "amount": Decimal("1234.5000"),
        "region": "South",
        "products": ["Seats", "Support"],
        "signed": True,
        "renewal": date(2027, 6, 1),
        "site": "https://example.com/deal",
        "brief": "Two lines\nof text",
    }
    changed = set(
        OpportunityHistory.objects.filter(opportunity=deal).values_list("field", flat=True)
    )
    assert {TrackedField.CLOSE_DATE, TrackedField.PROBABILITY, TrackedField.TAGS} <= changed
    assert TrackedField.CUSTOM_FIELD in changed
    html = response.content.decode()
    assert "Weighted <strong>$650</strong> at 65 %" in html
    assert f'name="version" value="{deal.version}"' in html


def test_clearing_the_probability_falls_back_to_the_stage(client, deal):
    Opportunity.objects.filter(pk=deal.pk).update(probability=80)
    deal.refresh_from_db()
    client.post(_url("fields_save", deal.pk), _fields_data(deal), **HX)
    deal.refresh_from_db()
    assert deal.probability is None


def _assert_nothing_changed(deal, version):
    deal.refresh_from_db()
    assert deal.version == version
    assert deal.expected_close_date is None and deal.probability is None
    assert not deal.tags.exists() and not CustomFieldValue.objects.filter(opportunity=deal).exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"cf_amount": "twelve"}, "Amount: enter a number."),
        ({"cf_region": "East"}, "Region: “East” is not one of North, South."),
        ({"cf_products": ["Seats", "Gold"]}, "Products: “Gold” is not one of"),
        ({"cf_renewal": "31/31/2027"}, "Renewal: enter a date like"),
        ({"cf_site": "javascript:alert(1)"}, "Site: enter a full web address"),
        ({"expected_close_date": "10000-01-01"}, "Enter a close date between 2000 and 2999"),
        ({"probability": "140"}, "Enter a percentage from 0 to 100."),
        ({"tags": "ok, <b>bold</b>"}, "a tag is 1–50 characters without &lt; &gt; &amp; or quotes"),
    ],
)
def test_bad_input_is_refused_with_a_message_and_nothing_changes(
    client, deal, fields, overrides, message
):
    version = deal.version
    good = {"expected_close_date": "2027-01-31", "tags": "hot", "cf_amount": "5"}
    response = client.post(
        _url("fields_save", deal.pk), _fields_data(deal, **good | overrides), **HX
    )
    html = response.content.decode()
    assert response.status_code == 422
    assert message in html
    _assert_nothing_changed(deal, version)
    assert not Tag.objects.filter(name="hot").exists()


def test_refused_input_is_kept_in_the_form(client, deal, fields):
    data = _fields_data(deal, cf_amount="twelve", cf_region="North", tags="kept-tag")
    html = client.post(_url("fields_save", deal.pk), data, **HX).content.decode()
    assert 'value="twelve"' in html and 'value="kept-tag"' in html
    assert '<option value="North" selected>' in html


def test_refused_input_without_javascript_shows_the_page_again(client, deal, fields):
    response = client.post(_url("fields_save", deal.pk), _fields_data(deal, cf_amount="x"))
    html = response.content.decode()
    assert response.status_code == 400
    assert "<html" in html and "Amount: enter a number." in html


def test_saving_without_javascript_redirects_to_the_record(client, deal):
    response = client.post(_url("fields_save", deal.pk), _fields_data(deal, probability="30"))
    assert response.status_code == 302 and response["Location"] == _url("detail", deal.pk)


def test_a_required_custom_field_left_empty_is_refused(client, deal, fields):
    fields["region"].required = True
    fields["region"].save()
    response = client.post(_url("fields_save", deal.pk), _fields_data(deal), **HX)
    assert response.status_code == 422 and "Region is required." in response.content.decode()


def test_fields_of_another_pipeline_are_not_on_the_record(client, deal):
    other, _ = factories.pipeline_with_stages(("Only",))
    field = CustomField.objects.create(name="Fleet size", key="fleet", field_type="number")
    field.pipelines.add(other)
    assert "Fleet size" not in client.get(_url("detail", deal.pk)).content.decode()


def test_a_stale_version_is_refused_with_409(client, deal):
    Opportunity.objects.filter(pk=deal.pk).update(version=deal.version + 1)
    response = client.post(_url("fields_save", deal.pk), _fields_data(deal, probability="50"), **HX)
    assert response.status_code == 409
    deal.refresh_from_db()
    assert deal.probability is None


# --- Followers ---------------------------------------------------------------------------------


def test_a_follower_is_added_then_sees_and_edits_the_deal(client, deal):
    colleague = factories.rep(first_name="Casey", last_name="Colleague")
    response = client.post(
        _url("followers", deal.pk), {"version": deal.version, "add": colleague.pk}, **HX
    )
    assert response.status_code == 200 and "Casey Colleague" in response.content.decode()
    assert list(deal.followers.all()) == [colleague]

    client.force_login(colleague)
    assert client.get(_url("detail", deal.pk)).status_code == 200
    deal.refresh_from_db()
    response = client.post(_url("fields_save", deal.pk), _fields_data(deal, probability="45"), **HX)
    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.probability == 45


def test_another_rep_gets_404_on_the_record_and_its_forms(client, deal):
    client.force_login(factories.rep())
    assert client.get(_url("detail", deal.pk)).status_code == 404
    data = _fields_data(deal, probability="10")
    assert client.post(_url("fields_save", deal.pk), data, **HX).status_code == 404
    follow = {"version": deal.version, "add": factories.rep().pk}
    assert client.post(_url("followers", deal.pk), follow, **HX).status_code == 404
    deal.refresh_from_db()
    assert deal.probability is None and not deal.followers.exists()


def test_an_eleventh_follower_is_refused(client, deal):
    deal.followers.set([factories.rep() for _ in range(10)])
    deal.refresh_from_db()
    version = deal.version
    extra = factories.rep()
    response = client.post(_url("followers", deal.pk), {"version": version, "add": extra.pk}, **HX)
    assert response.status_code == 422
    assert "At most 10 followers" in response.content.decode()
    assert deal.followers.count() == 10 and not deal.followers.filter(pk=extra.pk).exists()


def test_a_follower_is_removed(client, deal):
    colleague = factories.rep()
    deal.followers.add(colleague)
    response = client.post(
        _url("followers", deal.pk), {"version": deal.version, "remove": colleague.pk}, **HX
    )
    assert response.status_code == 200
    assert not deal.followers.exists()
    assert OpportunityHistory.objects.filter(opportunity=deal, field="followers").exists()


# --- Move to another pipeline, trash -----------------------------------------------------------


def test_move_to_another_pipeline_chooses_the_stage(client, deal):
    _, targets = factories.pipeline_with_stages(("New", "Demo"), name="Partners")
    response = client.post(
        _url("pipeline_move", deal.pk), {"version": deal.version, "stage": targets[1].pk}, **HX
    )
    assert response.status_code == 200
    deal.refresh_from_db()
    assert deal.pipeline_id == targets[1].pipeline_id and deal.stage_id == targets[1].pk
    assert OpportunityHistory.objects.filter(opportunity=deal, field="pipeline").exists()
    assert "Moved to Partners" in response.headers["HX-Trigger"]


def test_move_to_a_stage_of_the_same_pipeline_is_refused(client, deal, stages):
    response = client.post(
        _url("pipeline_move", deal.pk), {"version": deal.version, "stage": stages[1].pk}, **HX
    )
    assert response.status_code == 422 and "Choose one of the listed stages." in response.text
    deal.refresh_from_db()
    assert deal.stage_id == stages[0].pk


def test_delete_button_only_for_users_who_may_delete(client, deal):
    assert "Move to trash" not in client.get(_url("detail", deal.pk)).content.decode()
    response = client.post(_url("delete", deal.pk), {"version": deal.version}, **HX)
    assert response.status_code == 403
    deal.refresh_from_db()
    assert deal.deleted_at is None


def test_a_manager_moves_a_deal_to_the_trash(client, deal):
    manager = factories.manager()
    client.force_login(manager)
    assert "Move to trash" in client.get(_url("detail", deal.pk)).content.decode()
    response = client.post(_url("delete", deal.pk), {"version": deal.version}, **HX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == _url("board", deal.pipeline_id)
    deal.refresh_from_db()
    assert deal.deleted_at is not None and deal.deleted_by == manager
    assert client.get(_url("detail", deal.pk)).status_code == 404


# --- The full "new opportunity" form --------------------------------------------------------------


def _new_data(stage, **overrides):
    data = {
        "name": "Fleet renewal",
        "pipeline": str(stage.pipeline_id),
        "stage": str(stage.pk),
        "status": "open",
        "value": "5000",
        "source": "",
        "assigned_to": "",
        "lost_reason": "",
    }
    data.update(overrides)
    return data


def test_new_opportunity_form_takes_close_date_and_custom_fields(client, owner, stages, fields):
    html = client.get(_url("create")).content.decode()
    assert 'name="expected_close_date"' in html and 'name="cf_region"' in html
    data = _new_data(
        stages[0], assigned_to=str(owner.pk), expected_close_date="2027-02-28", cf_region="North"
    )
    response = client.post(_url("create"), data)
    assert response.status_code == 302
    created = Opportunity.objects.get(name="Fleet renewal")
    assert created.expected_close_date == date(2027, 2, 28)
    assert custom_values_of(created) == {"region": "North", "signed": False}


def test_new_opportunity_with_a_bad_custom_value_is_not_created(client, owner, stages, fields):
    data = _new_data(stages[0], cf_amount="lots", expected_close_date="2027-02-28")
    response = client.post(_url("create"), data)
    html = response.content.decode()
    assert response.status_code == 400 and "Amount: enter a number." in html
    assert 'value="lots"' in html
    assert not Opportunity.objects.filter(name="Fleet renewal").exists()


def test_the_history_shows_the_changed_deal_fields(client, deal, fields):
    data = _fields_data(deal, expected_close_date="2027-03-31", tags="vip", cf_region="North")
    client.post(_url("fields_save", deal.pk), data, **HX)
    html = client.get(_url("detail", deal.pk)).content.decode()
    timeline = html[html.index('class="timeline"') :]
    assert "Expected close date <strong>—</strong>" in timeline and "2027-03-31" in timeline
    assert "Tags <strong>—</strong>" in timeline and "region <strong>—</strong>" in timeline
