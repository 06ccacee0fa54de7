"""Tags on the board: chips on the cards (read with the cards) and the toolbar's tag filter."""

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from opportunities.models import Tag
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def board(client):
    pipeline, stages = factories.pipeline_with_stages()
    client.force_login(factories.manager())
    vip = Tag.objects.create(name="VIP", color="#db2777")
    partner = Tag.objects.create(name="partner", color="#16a34a")
    tagged = factories.OpportunityFactory(name="Tagged deal", stage=stages[0])
    tagged.tags.add(vip, partner)
    other = factories.OpportunityFactory(name="Partner deal", stage=stages[1])
    other.tags.add(partner)
    factories.OpportunityFactory(name="Plain deal", stage=stages[0])
    return pipeline, stages


def _board(client, pipeline, **query):
    return client.get(
        f"/pipelines/{pipeline.pk}/board/",
        query,
        headers={"HX-Request": "true", "HX-Target": "board"},
    )


def _card_names(html: str) -> set[str]:
    return set(re.findall(r'class="card-title" href="[^"]+">([^<]+)</a>', html))


def test_cards_show_their_tags_as_coloured_chips_in_name_order(client, board):
    pipeline, _ = board
    html = _board(client, pipeline).content.decode()
    card = html[html.index("Tagged deal") :].split("</li>")[0]
    assert re.findall(r'fill="(#[0-9a-f]{6})"/></svg>([^<]+)<', card) == [
        ("#16a34a", "partner"),
        ("#db2777", "VIP"),
    ]


def test_tag_filter_keeps_deals_with_any_of_the_tags(client, board):
    pipeline, _ = board
    assert _card_names(_board(client, pipeline, tags="vip").content.decode()) == {"Tagged deal"}
    assert _card_names(_board(client, pipeline, tags="VIP, Partner").content.decode()) == {
        "Tagged deal",
        "Partner deal",
    }


def test_tag_filter_keeps_the_boards_query_count(client, board):
    pipeline, _ = board
    with CaptureQueriesContext(connection) as plain:
        _board(client, pipeline)
    with CaptureQueriesContext(connection) as filtered:
        _board(client, pipeline, tags="vip")
    assert len(filtered) == len(plain)


def test_tag_chips_keep_cards_light(client, board):
    pipeline, _ = board
    html = _board(client, pipeline).content.decode()
    cards = re.findall(r'<li class="card .*?</li>', html, flags=re.S)
    assert len(cards) == 3
    assert sum(len(card.encode()) for card in cards) / len(cards) < 1024
