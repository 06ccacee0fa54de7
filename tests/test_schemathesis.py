"""Schema fuzzing of /api/v1/ with schemathesis: no 5xx, every answer as documented."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
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
from tests.webhook_receiver import webhook_manager

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _keep_the_test_connection():
    """Django's test client does this: a request's end must not close the connection that
    holds the test's transaction (PostgreSQL), as calling the WSGI app directly would."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token(db, settings):
    settings.API_RATE_LIMIT = (1_000_000, 10)
    _, stages = factories.pipeline_with_stages(("One", "Two"))
    user = webhook_manager(username="fuzz-manager")
    for number in range(3):
        factories.OpportunityFactory(stage=stages[number % 2], assigned_to=user)
    factories.LostReasonFactory(name="Price")
    return api_token_create(user=user, name="fuzz")[1]


# The schema is read from the app itself (the view needs no database).
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)


@schema.parametrize()
@settings(
    max_examples=15,
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
