import pytest
from django.urls import reverse

from tests import factories

pytestmark = pytest.mark.django_db


def test_board_renders_columns_with_cards(client):
    pipeline, stages = factories.pipeline_with_stages()
    user = factories.manager()
    factories.OpportunityFactory(stage=stages[0], name="Acme renewal", value=1200)
    client.force_login(user)
    response = client.get(reverse("opportunities:board", args=[pipeline.pk]))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Acme renewal" in html
    assert "$1,200" in html
