"""Schema fuzzing of /api/v1/ with schemathesis: no 5xx, every answer as documented."""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from crm.wsgi import application
from integrations.tokens import api_token_create
from tests import factories

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture
def token(db, settings):
    settings.API_RATE_LIMIT = (1_000_000, 10)
    _, stages = factories.pipeline_with_stages(("One", "Two"))
    user = factories.manager(username="fuzz-manager")
    for number in range(3):
        factories.OpportunityFactory(stage=stages[number % 2], assigned_to=user)
    factories.LostReasonFactory(name="Price")
    return api_token_create(user=user, name="fuzz")[1]


# The schema is read from the app itself (the view needs no database).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_api_answers_as_documented(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}", "Host": "127.0.0.1"},
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
