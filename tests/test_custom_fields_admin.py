"""Django admin for custom fields and tags: options one per line, keys, colours."""

import pytest
from django.urls import reverse

from opportunities.models import CustomField, Tag
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(factories.admin())
    return client


def _field_data(**overrides):
    data = {
        "name": "Region",
        "key": "region",
        "field_type": "single_choice",
        "choices": "North\nSouth\n\nnorth\n  East  ",
        "position": "1",
        "is_active": "on",
    }
    data.update(overrides)
    return data


def test_choice_field_is_saved_with_one_option_per_line(admin_client):
    response = admin_client.post(reverse("admin:opportunities_customfield_add"), _field_data())
    assert response.status_code == 302
    field = CustomField.objects.get(key="region")
    assert field.choices == ["North", "South", "East"]


def test_choice_field_without_options_is_refused(admin_client):
    response = admin_client.post(
        reverse("admin:opportunities_customfield_add"), _field_data(choices="")
    )
    assert response.status_code == 200
    assert "needs at least one option" in response.content.decode()
    assert not CustomField.objects.exists()


def test_custom_field_key_must_be_unique_and_a_slug(admin_client):
    CustomField.objects.create(name="Region", key="region", field_type="text")
    url = reverse("admin:opportunities_customfield_add")
    clash = admin_client.post(url, _field_data(key="REGION", name="Other"))
    assert "already uses this key" in clash.content.decode()
    bad = admin_client.post(url, _field_data(key="has space"))
    assert bad.status_code == 200
    assert CustomField.objects.count() == 1


def test_custom_field_list_is_ordered_by_position(admin_client):
    CustomField.objects.create(name="Second", key="second", field_type="text", position=2)
    CustomField.objects.create(name="First", key="first", field_type="text", position=1)
    html = admin_client.get(reverse("admin:opportunities_customfield_changelist")).content.decode()
    assert html.index("First") < html.index("Second")
    assert "All pipelines" in html


def test_tag_admin_refuses_markup_and_bad_colours(admin_client):
    url = reverse("admin:opportunities_tag_add")
    response = admin_client.post(url, {"name": "<b>hot</b>", "color": "red"})
    html = response.content.decode()
    assert "without &lt; &gt; &amp; or quotes" in html and "Enter a colour like" in html
    assert admin_client.post(url, {"name": "Hot", "color": "#DC2626"}).status_code == 302
    assert Tag.objects.get().color == "#dc2626"
