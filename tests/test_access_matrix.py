"""Access matrix: every named route x five roles x GET/POST, against one table.

Routes come from walking the URL resolver, so a new route that is missing from the table
fails `test_every_route_has_an_expectation` with its name. URL arguments are filled
with real objects of the right type: for routes about one opportunity (or its note or
task) both the rep's own and another rep's are tried. POSTs are htmx requests with no
data: they show who gets as far as validation (400/422), not what valid data does.

Pages a rep may open must not show another rep's opportunity, task or note.
"""

import copy
from dataclasses import dataclass

import pytest
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from opportunities.models import CustomField, Status, Tag
from opportunities.services.moves import opportunity_move
from tests import factories

pytestmark = pytest.mark.django_db

ROLES = ("anonymous", "rep", "viewall", "manager", "admin")
SECRET = "Zanzibar-secret"  # in the other rep's deal, task and note names: must never leak

# Shorthands: one status per role, in ROLES order.
LOGIN = 302  # anonymous: to the login page (checked below)
ALL_200 = (LOGIN, 200, 200, 200, 200)
ALL_405 = (LOGIN, 405, 405, 405, 405)
ALL_302 = (LOGIN, 302, 302, 302, 302)
OPEN_200 = (200, 200, 200, 200, 200)
OPEN_405 = (405, 405, 405, 405, 405)


@dataclass(frozen=True)
class Expect:
    get: tuple[int, ...]
    post: tuple[int, ...]
    query: str = ""  # query string for GET (e.g. where a column page starts)
    # Statuses when the object belongs to another rep; None: like `get`/`post`, except
    # that the rep who sees only their own gets 404 wherever the view is reached.
    other_get: tuple[int, ...] | None = None
    other_post: tuple[int, ...] | None = None


# fmt: off
E = Expect
P400, P422 = (LOGIN, 400, 400, 400, 400), (LOGIN, 422, 422, 422, 422)
EXPECTED: dict[str, Expect] = {
    # Site and sign-in
    "home":                     E(get=ALL_302, post=ALL_302),
    "healthz":                  E(get=OPEN_200, post=OPEN_405),
    "login":                    E(get=OPEN_200, post=OPEN_200),
    "logout":                   E(get=ALL_405, post=ALL_302),
    "password_change":          E(get=ALL_200, post=ALL_200),
    "password_change_done":     E(get=ALL_200, post=ALL_405),
    "password_reset":           E(get=OPEN_200, post=OPEN_200),
    "password_reset_done":      E(get=OPEN_200, post=OPEN_405),
    "password_reset_confirm":   E(get=OPEN_200, post=OPEN_200),
    "password_reset_complete":  E(get=OPEN_200, post=OPEN_405),
    # Board
    "opportunities:board":          E(get=ALL_200, post=ALL_405),
    "opportunities:board_version":  E(get=ALL_200, post=ALL_405),
    "opportunities:column_more":    E(get=ALL_200, post=ALL_405, query="after_rank=0&after_id=1"),
    "opportunities:move":           E(get=ALL_405, post=P400),
    "opportunities:status":         E(get=ALL_405, post=P400),
    "opportunities:lost_form":      E(get=ALL_200, post=ALL_405),
    "opportunities:card":           E(get=ALL_200, post=ALL_405),
    "opportunities:card_menu":      E(get=ALL_200, post=ALL_405),
    "opportunities:card_pipeline_move": E(get=ALL_405, post=P400),
    "opportunities:quick_add":      E(get=ALL_405, post=P400),
    # Record
    "opportunities:create":         E(get=ALL_200, post=P400),
    "opportunities:detail":         E(get=ALL_200, post=ALL_405),
    "opportunities:edit":           E(get=ALL_405, post=P422),
    "opportunities:record_status":  E(get=ALL_405, post=P400),
    "opportunities:note_add":       E(get=ALL_405, post=P422),
    "opportunities:task_add":       E(get=ALL_405, post=P422),
    "opportunities:communication_add": E(get=ALL_405, post=P422),
    # Only the author edits a note (the own note is the rep's, the other one rep2's).
    "opportunities:note_edit":      E(get=(LOGIN, 200, 403, 403, 403),
                                      post=(LOGIN, 422, 403, 403, 403),
                                      other_get=(LOGIN, 404, 403, 403, 403),
                                      other_post=(LOGIN, 404, 403, 403, 403)),
    "opportunities:note_delete":    E(get=ALL_405, post=(LOGIN, 200, 403, 403, 403),
                                      other_post=(LOGIN, 404, 403, 403, 403)),
    "opportunities:task_done":      E(get=ALL_405, post=ALL_200),
    "opportunities:my_tasks":       E(get=ALL_200, post=ALL_405),
    "opportunities:contact_search": E(get=ALL_200, post=ALL_405),
    "opportunities:contact_pick":   E(get=ALL_200, post=ALL_405),
    # Deal fields, followers, pipeline move; delete needs the delete permission (managers).
    "opportunities:fields_save":    E(get=ALL_405, post=P422),
    "opportunities:followers":      E(get=ALL_405, post=P422),
    "opportunities:pipeline_move":  E(get=ALL_405, post=P422),
    "opportunities:delete":         E(get=ALL_405, post=(LOGIN, 403, 403, 400, 400),
                                      other_post=(LOGIN, 403, 403, 400, 400)),
    # The trash is for managers; the deal given is not in it (404 for them).
    "opportunities:trash":          E(get=(LOGIN, 403, 403, 200, 200), post=ALL_405),
    "opportunities:restore":        E(get=ALL_405, post=(LOGIN, 403, 403, 404, 404),
                                      other_post=(LOGIN, 403, 403, 404, 404)),
    "opportunities:forecast":       E(get=ALL_200, post=ALL_405),
    # Manager
    "opportunities:list":           E(get=ALL_200, post=ALL_405),
    "opportunities:export":         E(get=ALL_200, post=ALL_405),
    "opportunities:import":         E(get=(LOGIN, 403, 403, 200, 200),
                                      post=(LOGIN, 403, 403, 400, 400)),
    # An import run that is not the user's (none is): not found, for importers too.
    "opportunities:import_progress": E(get=(LOGIN, 403, 403, 404, 404),
                                       post=(LOGIN, 403, 403, 404, 404)),
    # Bulk actions: POST only; an empty form is refused (no action, no preview token).
    "opportunities:bulk_preview":   E(get=ALL_405, post=P400),
    "opportunities:bulk_run":       E(get=ALL_405, post=P400),
    # Notifications (everyone's own), the record's automation panel and e-mail form.
    "automation:bell":              E(get=ALL_200, post=ALL_405),
    "automation:notifications":     E(get=ALL_200, post=ALL_405),
    "automation:mark_all_read":     E(get=ALL_405, post=ALL_200),
    "automation:email_setting":     E(get=ALL_405, post=ALL_302),
    "automation:panel":             E(get=ALL_200, post=ALL_405),
    "automation:email":             E(get=ALL_405, post=P422),
    # Settings → Automation: managers and admins.
    "automation:rules":             E(get=(LOGIN, 403, 403, 200, 200),
                                      post=(LOGIN, 403, 403, 200, 200)),
    "automation:rule_create":       E(get=(LOGIN, 403, 403, 200, 200),
                                      post=(LOGIN, 403, 403, 422, 422)),
    "automation:rule_edit":         E(get=(LOGIN, 403, 403, 200, 200),
                                      post=(LOGIN, 403, 403, 422, 422)),
    "automation:rule_toggle":       E(get=ALL_405, post=(LOGIN, 403, 403, 302, 302)),
    # Settings → API tokens: each user's own (the token given is the rep's).
    "integrations:api_tokens":      E(get=ALL_200, post=ALL_200),
    "integrations:api_token_revoke": E(get=ALL_405, post=(LOGIN, 302, 404, 404, 404)),
    # Settings → Webhooks: managers and admins.
    "integrations:webhooks":        E(get=(LOGIN, 403, 403, 200, 200),
                                      post=(LOGIN, 403, 403, 200, 200)),
    "integrations:webhook_detail":  E(get=(LOGIN, 403, 403, 200, 200),
                                      post=(LOGIN, 403, 403, 200, 200)),
    "integrations:webhook_set_active": E(get=ALL_405, post=(LOGIN, 403, 403, 302, 302)),
    "integrations:webhook_delete":  E(get=ALL_405, post=(LOGIN, 403, 403, 302, 302)),
    "integrations:delivery_redeliver": E(get=ALL_405, post=(LOGIN, 403, 403, 302, 302)),
    # The API's documentation is public (no data); its operations are in the next table.
    "api-docs":                     E(get=OPEN_200, post=OPEN_405),
    "api:openapi-json":             E(get=OPEN_200, post=OPEN_200),
    "api:api-root":                 E(get=(404,) * 5, post=(404,) * 5),
}
# fmt: on
# The REST API's operations answer bearer tokens, not sessions: their matrix (every route x
# role, own and another rep's deal) is tests/test_api_access.py.
API_OPERATIONS = "api:"


# Django admin: whole families of routes, by name. Only staff get in; everyone else is
# sent to the admin's own login page.
ADMIN_LOGIN = 302
ADMIN_ONLY_200 = (ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, 200)
ADMIN_FAMILIES: dict[str, Expect] = {
    "index": Expect(get=ADMIN_ONLY_200, post=ADMIN_ONLY_200),
    "app_list": Expect(get=ADMIN_ONLY_200, post=ADMIN_ONLY_200),
    "changelist": Expect(get=ADMIN_ONLY_200, post=ADMIN_ONLY_200),
    "add": Expect(get=ADMIN_ONLY_200, post=ADMIN_ONLY_200),
    "change": Expect(get=ADMIN_ONLY_200, post=ADMIN_ONLY_200),
    "history": Expect(get=ADMIN_ONLY_200, post=ADMIN_ONLY_200),
    # An empty POST only shows the confirmation again; nothing is deleted.
    "delete": Expect(get=ADMIN_ONLY_200, post=ADMIN_ONLY_200),
    "login": Expect(get=(200, 200, 200, 200, 302), post=(200, 200, 200, 200, 200)),
    "logout": Expect(get=(ADMIN_LOGIN,) * 4 + (405,), post=(302,) * 5),
    "password_change": Expect(get=ADMIN_ONLY_200, post=ADMIN_ONLY_200),
    "password_change_done": Expect(get=ADMIN_ONLY_200, post=(ADMIN_LOGIN,) * 4 + (405,)),
    "jsi18n": Expect(get=ADMIN_ONLY_200, post=(ADMIN_LOGIN,) * 4 + (405,)),
    "autocomplete": Expect(get=(ADMIN_LOGIN,) * 4 + (403,), post=(ADMIN_LOGIN,) * 4 + (405,)),
    "view_on_site": Expect(get=(ADMIN_LOGIN,) * 4 + (404,), post=(ADMIN_LOGIN,) * 4 + (404,)),
}
# The login attempt logs of django-axes are written by axes only.
ADMIN_READ_ONLY = ("admin:axes_",)
READ_ONLY_ADD = Expect(get=(ADMIN_LOGIN,) * 4 + (403,), post=(ADMIN_LOGIN,) * 4 + (403,))


COVERED_BY_API_MATRIX = Expect(get=(), post=())


def named_routes() -> dict[str, URLPattern]:
    """Every named route, with its namespace, from the URL resolver."""
    routes = {}

    def walk(patterns, namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                inner = namespace
                if pattern.namespace:
                    inner = f"{namespace}{pattern.namespace}:"
                walk(pattern.url_patterns, inner)
            elif pattern.name:
                routes[f"{namespace}{pattern.name}"] = pattern

    walk(get_resolver().url_patterns)
    return routes


ROUTES = sorted(named_routes())


# Admins that differ from the families: read-only logs, and the guarded deletes of
# pipelines and stages (they redirect with a message while the object is in use).
READ_ONLY_CHANGE = Expect(get=ADMIN_ONLY_200, post=(ADMIN_LOGIN,) * 4 + (302,))
FORBIDDEN = Expect(get=(ADMIN_LOGIN,) * 4 + (403,), post=(ADMIN_LOGIN,) * 4 + (403,))
READ_ONLY_LOG = Expect(get=ADMIN_ONLY_200, post=(ADMIN_LOGIN,) * 4 + (403,))
GUARDED_DELETE = Expect(get=(ADMIN_LOGIN,) * 4 + (302,), post=(ADMIN_LOGIN,) * 4 + (302,))
ADMIN_OVERRIDES = {
    "admin:axes_accessattempt_change": READ_ONLY_CHANGE,
    "admin:axes_accesslog_change": READ_ONLY_CHANGE,
    "admin:axes_accessfailurelog_change": READ_ONLY_CHANGE,
    "admin:opportunities_opportunityhistory_add": FORBIDDEN,
    "admin:opportunities_opportunityhistory_change": Expect(
        get=ADMIN_ONLY_200, post=(ADMIN_LOGIN,) * 4 + (403,)
    ),
    "admin:opportunities_opportunityhistory_delete": FORBIDDEN,
    "admin:pipelines_pipeline_delete": GUARDED_DELETE,
    # Written by the app only: run logs, queued jobs, tokens (made on the settings page),
    # delivery logs.
    "admin:automation_rulerun_add": FORBIDDEN,
    "admin:django_tasks_database_dbtaskresult_add": FORBIDDEN,
    "admin:integrations_apitoken_add": FORBIDDEN,
    "admin:integrations_webhookdelivery_change": READ_ONLY_LOG,
    "admin:automation_rulerun_change": READ_ONLY_LOG,
    "admin:django_tasks_database_dbtaskresult_change": READ_ONLY_LOG,
    "admin:django_tasks_database_dbtaskresult_delete": FORBIDDEN,
    "admin:pipelines_stage_delete": GUARDED_DELETE,
}


def expectation(name: str) -> Expect | None:
    if name in EXPECTED:
        return EXPECTED[name]
    if name.startswith(API_OPERATIONS):
        return COVERED_BY_API_MATRIX
    if name in ADMIN_OVERRIDES:
        return ADMIN_OVERRIDES[name]
    if not name.startswith("admin:"):
        return None
    short = name.removeprefix("admin:")
    if short in ADMIN_FAMILIES:
        return ADMIN_FAMILIES[short]
    if short.endswith("_password_change"):  # the user admin's "set password" form
        return ADMIN_FAMILIES["password_change"]
    family = short.rsplit("_", 1)[-1]
    if family == "add" and name.startswith(ADMIN_READ_ONLY):
        return READ_ONLY_ADD
    return ADMIN_FAMILIES.get(family)


def test_every_route_has_an_expectation():
    missing = [name for name in ROUTES if expectation(name) is None]
    assert not missing, (
        f"Routes without an access expectation: {missing}. Add them to EXPECTED in "
        "tests/test_access_matrix.py with the status each role should get."
    )


def test_the_table_names_only_existing_routes():
    stale = sorted(set(EXPECTED) - set(ROUTES))
    assert not stale, f"EXPECTED lists routes that no longer exist: {stale}"


# --- the world the requests run in ----------------------------------------------------------


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    """Built once for the module inside a transaction rolled back at its end; each test
    runs in a savepoint inside it (the `db` fixture), so tests cannot disturb each other."""
    with (
        django_db_blocker.unblock(),
        override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]),
        transaction.atomic(),
    ):
        yield _build_world()
        transaction.set_rollback(True)


def _build_world() -> dict:
    # Before the function-scoped fixtures: a browser test earlier on this worker may have
    # flushed the groups that migration 0003 made.
    factories.ensure_roles()
    pipeline, stages = factories.pipeline_with_stages(("Lead", "Proposal"), name="Sales")
    users = {
        "rep": factories.rep(username="matrix_rep"),
        "rep2": factories.rep(username="matrix_rep2"),
        "viewall": factories.rep_with_view_all(username="matrix_viewall"),
        "manager": factories.manager(username="matrix_manager"),
        "admin": factories.admin(username="matrix_admin"),
    }
    reason = factories.LostReasonFactory(name="Price")
    own = factories.OpportunityFactory(stage=stages[0], assigned_to=users["rep"], name="Own deal")
    other = factories.OpportunityFactory(
        stage=stages[0], assigned_to=users["rep2"], name=f"{SECRET} deal"
    )
    factories.OpportunityFactory(
        stage=stages[1], assigned_to=users["rep2"], status=Status.LOST, lost_reason=reason
    )
    targets = {
        "own": {
            "opportunity": own,
            "note": factories.NoteFactory(opportunity=own, author=users["rep"], body="Own note"),
            "task": factories.TaskFactory(opportunity=own, title="Own task"),
        },
        "other": {
            "opportunity": other,
            "note": factories.NoteFactory(
                opportunity=other, author=users["rep2"], body=f"{SECRET} note"
            ),
            "task": factories.TaskFactory(opportunity=other, title=f"{SECRET} task"),
        },
    }
    factories.CommunicationFactory(opportunity=own)
    attempt = {"user_agent": "curl", "ip_address": "127.0.0.1", "username": "matrix_rep"}
    attempt |= {"http_accept": "*/*", "path_info": "/accounts/login/"}
    AccessAttempt.objects.create(**attempt, get_data="", post_data="", failures_since_start=1)
    AccessLog.objects.create(**attempt)
    AccessFailureLog.objects.create(**attempt)
    # A custom field and a tag, for their admin pages.
    CustomField.objects.create(name="Region", key="region", field_type="text")
    Tag.objects.create(name="vip")
    # Objects of the settings pages: a rule, a webhook with one delivery, the rep's token.
    from automation.models import Rule, Trigger
    from integrations.models import WebhookDelivery, WebhookSubscription
    from integrations.tokens import api_token_create

    rule = Rule.objects.create(name="Nudge", trigger=Trigger.CREATED, acting_user=users["manager"])
    # Made directly: the service would resolve the host name (no network here).
    hook = WebhookSubscription.objects.create(
        url="https://example.com/hook",
        event_types=["OpportunityCreate"],
        secret="whsec_bWF0cml4LXRlc3Qtc2VjcmV0LTI0Ynl0ZXM=",
        created_by=users["manager"],
    )
    delivery = WebhookDelivery.objects.create(
        subscription=hook,
        event_id=1,
        event_type="OpportunityCreate",
        opportunity_id=own.pk,
        body="{}",
    )
    token, _ = api_token_create(user=users["rep"], name="Script")
    # One row of every other admin-visible model, for their change pages.
    from automation.models import EmailTemplate, Notification, NotificationSetting, RuleRun
    from integrations.models import EventCursor
    from integrations.tasks import deliver_webhooks

    EmailTemplate.objects.create(name="Hello", subject="Hi", body="Hello {{ contact.first_name }}")
    Notification.objects.create(user=users["rep"], opportunity=own, text="Look at this")
    NotificationSetting.objects.create(user=users["rep"])
    RuleRun.objects.create(rule=rule, opportunity=own, outcome="done")
    EventCursor.objects.create(name="matrix")
    deliver_webhooks.enqueue(hook.pk, own.pk)  # a queued job for the tasks admin (no worker)
    # A history row, so the history admin has an object to show.
    opportunity_move(opportunity=own, to_stage=stages[1], version=own.version, user=users["rep"])
    clients = {"anonymous": Client()}
    for role in ROLES[1:]:
        clients[role] = Client()
        clients[role].handler = clients["anonymous"].handler  # load the middleware once
        clients[role].force_login(users[role])
    return {
        "pipeline": pipeline,
        "stages": stages,
        "users": users,
        "targets": targets,
        "clients": clients,
        # Settings objects by the route-name prefix whose <pk> they fill.
        "settings_objects": {
            "automation:rule_": rule,
            "integrations:webhook_": hook,
            "integrations:delivery_": hook,
            "integrations:api_token_": token,
        },
        "delivery": delivery,
    }


OWNED_KWARGS = {"pk": "opportunity", "note_id": "note", "task_id": "task"}


def _admin_object(world, name: str):
    """The object an admin route about a model should open."""
    from django.apps import apps

    short = name.removeprefix("admin:")
    short = (
        short.removesuffix("_password_change") if "password" in short else short.rsplit("_", 1)[0]
    )
    for model in apps.get_models():
        if f"{model._meta.app_label}_{model._meta.model_name}" == short:
            return model.objects.order_by("pk").first()
    raise AssertionError(f"no model for {name}")


def url_kwargs(world, name: str, pattern: URLPattern, target: str) -> dict:
    kwargs = {}
    settings_object = next(
        (obj for prefix, obj in world["settings_objects"].items() if name.startswith(prefix)),
        None,
    )
    for key in pattern.pattern.converters or _regex_groups(pattern):
        if key == "pk" and settings_object is not None:
            kwargs[key] = settings_object.pk
        elif key == "delivery_pk":
            kwargs[key] = world["delivery"].pk
        elif key in OWNED_KWARGS:
            kwargs[key] = world["targets"][target][OWNED_KWARGS[key]].pk
        elif key == "pipeline_id":
            kwargs[key] = world["pipeline"].pk
        elif key == "stage_id":
            kwargs[key] = world["stages"][0].pk
        elif key == "run_id":
            kwargs[key] = "00000000-0000-4000-8000-000000000000"
        elif key == "uidb64":
            kwargs[key] = "MQ"
        elif key == "token":
            kwargs[key] = "set-password"
        elif key == "app_label":
            kwargs[key] = "opportunities"
        elif key == "object_id" and name == "admin:view_on_site":
            kwargs[key] = str(world["targets"]["own"]["opportunity"].pk)
        elif key == "content_type_id":
            kwargs[key] = str(ContentType.objects.get_for_model(world["pipeline"]).pk)
        elif key in ("object_id", "id"):
            kwargs[key] = str(_admin_object(world, name).pk)
        else:
            raise AssertionError(f"Cannot fill <{key}> of {name}: teach url_kwargs().")
    return kwargs


def _regex_groups(pattern: URLPattern) -> list[str]:
    return list(pattern.pattern.regex.groupindex)


SETTINGS_PREFIXES = ("automation:rule_", "integrations:")


def _targets(name: str) -> list[str]:
    if name.startswith(SETTINGS_PREFIXES):  # <pk> is a rule, webhook or token, not a deal
        return ["own"]
    pattern = named_routes()[name]
    keys = set(pattern.pattern.converters or _regex_groups(pattern))
    return ["own", "other"] if keys & set(OWNED_KWARGS) else ["own"]


def _expected(expect: Expect, method: str, target: str) -> tuple[int, ...]:
    base = expect.get if method == "GET" else expect.post
    if target == "own":
        return base
    override = expect.other_get if method == "GET" else expect.other_post
    if override is not None:
        return override
    # Another rep's object: 404 for the rep who sees only their own, once past the
    # method check.
    rep = 405 if base[1] == 405 else 404
    return (base[0], rep, *base[2:])


def _is_sign_in_wall(name: str, role: str) -> bool:
    """Whether a 302 here must be the way to a login page (not an ordinary redirect)."""
    if role == "anonymous":
        return name not in ("home", "logout", "admin:logout")
    return name.startswith("admin:") and role != "admin" and name != "admin:logout"


def _body(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def _request(client: Client, method: str, url: str, query: str):
    """One request in a savepoint rolled back after it, with the cookies put back, so what
    one role's request did (a delete, a logout) does not change what the next one finds."""
    cookies = copy.deepcopy(client.cookies)  # a logout must not sign the client out for good
    with transaction.atomic():
        if method == "GET":
            response = client.get(f"{url}?{query}" if query else url)
        else:
            response = client.post(url, {}, headers={"HX-Request": "true"})
        body = _body(response)
        transaction.set_rollback(True)
    client.cookies = cookies
    return response, body


CASES = [
    (name, target)
    for name in ROUTES
    if expectation(name) is not COVERED_BY_API_MATRIX
    for target in _targets(name)
]


@pytest.mark.parametrize(("name", "target"), CASES, ids=[f"{n}[{t}]" for n, t in CASES])
def test_route_answers_each_role_as_the_table_says(world, db, name, target):
    expect = expectation(name)
    assert expect is not None, f"{name} has no expectation (see the test above)"
    pattern = named_routes()[name]
    url = reverse(name, kwargs=url_kwargs(world, name, pattern, target))
    wrong = []
    for method in ("GET", "POST"):
        expected = _expected(expect, method, target)
        for role, status in zip(ROLES, expected, strict=True):
            response, body = _request(world["clients"][role], method, url, expect.query)
            if response.status_code != status:
                wrong.append(f"{method} {url} as {role}: {response.status_code}, expected {status}")
                continue
            location = response.headers.get("Location", "")
            to_login = location.startswith((reverse("login"), "/admin/login/"))
            if status == 302 and _is_sign_in_wall(name, role) and not to_login:
                wrong.append(f"{method} {url} as {role} redirects to {location}")
            if role == "rep" and SECRET.encode() in body:
                wrong.append(f"{method} {url} as rep shows another rep's data")
    assert not wrong, "\n".join(wrong)


def test_the_leak_marker_shows_where_it_may(world, db):
    """Guards the leak check above: the marker is on pages of those allowed to see it."""
    board = reverse("opportunities:board", args=[world["pipeline"].pk])
    for role in ("viewall", "manager"):
        _, body = _request(world["clients"][role], "GET", board, "")
        assert SECRET.encode() in body
