"""The board's weighted totals forecast open deals only."""

import re

from django.urls import reverse

from tests import factories


def _weighted(html: str) -> list[str]:
    return re.findall(r'class="weighted"[^>]*>([^<]*) weighted', html)


def test_weighted_counts_open_value_only(client, db):
    _, stages = factories.pipeline_with_stages()
    stages[0].probability = 50
    stages[0].save(update_fields=["probability"])
    factories.OpportunityFactory(stage=stages[0], value=1000)
    factories.OpportunityFactory(stage=stages[0], value=600, status="won")
    client.force_login(factories.manager())
    url = reverse("opportunities:board", args=[stages[0].pipeline_id])
    every = client.get(url, {"status": "all"}).content.decode()
    assert _weighted(every) == ["$500"]  # half of the open 1,000; the won 600 is not a chance
    won_only = client.get(url, {"status": "won"}).content.decode()
    assert _weighted(won_only) == []
