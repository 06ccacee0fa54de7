"""The bell, the notifications page, the deal's e-mail form and Settings → Automation."""

import pytest
from django.core import mail
from django.urls import reverse

from automation.models import Notification, NotificationSetting, Rule, Trigger
from opportunities.models import Communication
from tests import factories

pytestmark = pytest.mark.django_db


@pytest.fixture
def rep_client(client):
    rep = factories.rep(username="rep")
    client.force_login(rep)
    return client, rep


def test_the_bell_shows_the_unread_count_and_the_latest(rep_client):
    client, rep = rep_client
    deal = factories.OpportunityFactory(assigned_to=rep)
    Notification.objects.create(user=rep, opportunity=deal, text="Deal is stale")
    Notification.objects.create(user=factories.rep(), text="not mine")
    page = client.get(reverse("automation:bell"), headers={"HX-Request": "true"})
    html = page.content.decode()
    assert 'data-testid="bell-count">1<' in html
    assert "Deal is stale" in html
    assert reverse("opportunities:detail", args=[deal.pk]) in html
    assert "not mine" not in html


def test_mark_all_read_empties_the_count(rep_client):
    client, rep = rep_client
    Notification.objects.create(user=rep, text="one")
    Notification.objects.create(user=rep, text="two")
    answer = client.post(reverse("automation:mark_all_read"), headers={"HX-Request": "true"})
    assert answer.status_code == 200
    assert "bell-count" not in answer.content.decode()
    assert not Notification.objects.filter(read_at__isnull=True).exists()


def test_a_user_turns_notification_emails_off(rep_client):
    client, rep = rep_client
    client.post(reverse("automation:email_setting"), {})
    assert NotificationSetting.objects.get(user=rep).email is False
    client.post(reverse("automation:email_setting"), {"email": "on"})
    assert NotificationSetting.objects.get(user=rep).email is True


def test_the_base_page_loads_the_bell_lazily(rep_client):
    client, _ = rep_client
    page = client.get(reverse("automation:notifications"))
    assert reverse("automation:bell") in page.content.decode()


def test_sending_an_email_to_the_contact_logs_it(rep_client):
    client, rep = rep_client
    deal = factories.OpportunityFactory(assigned_to=rep)
    answer = client.post(
        reverse("automation:email", args=[deal.pk]),
        {"subject": "About {deal}", "body": "Hi {first_name}"},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 200
    assert mail.outbox[0].subject == f"About {deal.name}"
    assert mail.outbox[0].to == [deal.contact.email]
    assert Communication.objects.get(opportunity=deal).kind == "email"


def test_emailing_a_contact_without_address_is_refused_with_a_message(rep_client):
    client, rep = rep_client
    deal = factories.OpportunityFactory(assigned_to=rep, contact__email="")
    answer = client.post(
        reverse("automation:email", args=[deal.pk]),
        {"subject": "Hi", "body": "Hello"},
        headers={"HX-Request": "true"},
    )
    assert answer.status_code == 422
    assert "has no e-mail address" in answer.content.decode()
    assert not mail.outbox
    assert not Communication.objects.exists()


def test_an_unknown_placeholder_is_refused(rep_client):
    client, rep = rep_client
    deal = factories.OpportunityFactory(assigned_to=rep)
    answer = client.post(
        reverse("automation:email", args=[deal.pk]), {"subject": "Hi {nickname}", "body": "x"}
    )
    assert answer.status_code == 422
    assert "Unknown placeholder {nickname}" in answer.content.decode()


def test_another_reps_deal_cannot_be_emailed(rep_client):
    client, _ = rep_client
    deal = factories.OpportunityFactory(assigned_to=factories.rep())
    answer = client.post(
        reverse("automation:email", args=[deal.pk]), {"subject": "Hi", "body": "x"}
    )
    assert answer.status_code == 404
    assert not mail.outbox


def test_managers_see_and_toggle_rules_and_reps_do_not(client):
    manager = factories.manager()
    rule = Rule.objects.create(name="Nudge", trigger=Trigger.CREATED, acting_user=manager)
    rep = factories.rep()
    client.force_login(rep)
    assert client.get(reverse("automation:rules")).status_code == 403
    assert client.post(reverse("automation:rule_toggle", args=[rule.pk])).status_code == 403

    client.force_login(manager)
    page = client.get(reverse("automation:rules"))
    assert page.status_code == 200
    assert "Nudge" in page.content.decode()
    client.post(reverse("automation:rule_toggle", args=[rule.pk]))
    rule.refresh_from_db()
    assert rule.enabled is False


def rule_post(rule_fields, actions=(), conditions=()):
    data = {
        "name": "Proposal follow-up",
        "enabled": "on",
        "position": "0",
        "trigger": "stage_entered",
        **rule_fields,
        "conditions-TOTAL_FORMS": str(len(conditions)),
        "conditions-INITIAL_FORMS": "0",
        "actions-TOTAL_FORMS": str(len(actions)),
        "actions-INITIAL_FORMS": "0",
    }
    for prefix, rows in (("conditions", conditions), ("actions", actions)):
        for index, row in enumerate(rows):
            data |= {f"{prefix}-{index}-{key}": value for key, value in row.items()}
    return data


@pytest.fixture
def manager_client(client):
    manager = factories.manager(username="dana")
    client.force_login(manager)
    pipeline, stages = factories.pipeline_with_stages(name="Sales")
    return client, manager, pipeline, stages


def test_a_manager_creates_a_rule_and_sees_the_email_preview(manager_client):
    client, manager, pipeline, stages = manager_client
    answer = client.post(
        reverse("automation:rule_create"),
        rule_post(
            {"pipeline": pipeline.pk, "stage": stages[2].pk, "acting_user": manager.pk},
            actions=[
                {
                    "kind": "create_task",
                    "recipient": "owner",
                    "title": "Send it",
                    "position": 0,
                    "due_in_days": 2,
                },
                {
                    "kind": "email_contact",
                    "title": "Hi {first_name}",
                    "body": "About {deal}",
                    "position": 1,
                },
            ],
            conditions=[{"kind": "value_gte", "value": "500"}],
        ),
        follow=True,
    )
    html = answer.content.decode()
    rule = Rule.objects.get()
    assert (rule.stage, rule.acting_user, rule.actions.count(), rule.conditions.count()) == (
        stages[2],
        manager,
        2,
        1,
    )
    assert "Hi Ada" in html and "About Analytical Engine licence" in html


@pytest.mark.parametrize(
    ("rule_fields", "action", "message"),
    [
        ({"stage": "other"}, None, "That stage belongs to another pipeline."),
        (
            {},
            {"kind": "create_task", "title": "t", "due_in_days": -5},
            "A task cannot be due in the past",
        ),
        (
            {},
            {"kind": "notify", "title": "t", "recipient": "group", "group": "empty"},
            "has no active members",
        ),
        ({"acting_user": "retired"}, None, "Select a valid choice"),
        ({"acting_user": "superuser"}, None, "Select a valid choice"),
        ({}, {"kind": "move_stage", "stage": "other"}, "That stage belongs to another pipeline."),
    ],
)
def test_a_bad_rule_is_refused_with_a_message(manager_client, rule_fields, action, message):
    from django.contrib.auth.models import Group

    client, manager, pipeline, stages = manager_client
    _, other_stages = factories.pipeline_with_stages(name="Other")
    lookups = {
        "other": other_stages[1].pk,
        "empty": Group.objects.create(name="Empty").pk,
        "retired": factories.manager(username="gone", is_active=False).pk,
        "superuser": factories.admin(username="root").pk,
    }
    fields = {"pipeline": pipeline.pk, "stage": stages[2].pk, "acting_user": manager.pk}
    fields |= {key: lookups.get(value, value) for key, value in rule_fields.items()}
    actions = []
    if action:
        actions = [{"position": 0, **{k: lookups.get(v, v) for k, v in action.items()}}]
    answer = client.post(reverse("automation:rule_create"), rule_post(fields, actions=actions))
    assert answer.status_code == 422
    assert message in answer.content.decode()
    assert not Rule.objects.exists()


def test_a_manager_edits_a_rule(manager_client):
    client, manager, _, _ = manager_client
    rule = Rule.objects.create(
        name="Old", trigger=Trigger.CREATED, acting_user=manager, problem="its user left"
    )
    page = client.get(reverse("automation:rule_edit", args=[rule.pk]))
    assert page.status_code == 200
    client.post(
        reverse("automation:rule_edit", args=[rule.pk]),
        rule_post({"name": "New", "trigger": "created", "acting_user": manager.pk}),
    )
    rule.refresh_from_db()
    assert (rule.name, rule.problem) == ("New", "")


def test_choosing_a_template_fills_the_form_and_sending_uses_it(rep_client):
    from automation.models import EmailTemplate

    client, rep = rep_client
    deal = factories.OpportunityFactory(assigned_to=rep)
    template = EmailTemplate.objects.create(
        name="Proposal sent", subject="Proposal for {deal}", body="Dear {first_name}"
    )
    panel = client.get(
        reverse("automation:panel", args=[deal.pk]),
        {"template": template.pk},
        headers={"HX-Request": "true"},
    )
    assert "Proposal for {deal}" in panel.content.decode()
    client.post(reverse("automation:email", args=[deal.pk]), {"template": template.pk})
    assert mail.outbox[0].subject == f"Proposal for {deal.name}"
    assert mail.outbox[0].body == f"Dear {deal.contact.name.split()[0]}"


def test_an_email_without_subject_or_template_is_refused(rep_client):
    client, rep = rep_client
    deal = factories.OpportunityFactory(assigned_to=rep)
    answer = client.post(reverse("automation:email", args=[deal.pk]), {"body": "Hello"})
    assert answer.status_code == 422
    assert "Give the e-mail a subject" in answer.content.decode()
    assert not mail.outbox


def test_admin_refuses_a_task_due_in_the_past_with_a_message(client):
    admin = factories.admin()
    client.force_login(admin)
    pipeline, stages = factories.pipeline_with_stages(name="Sales")
    assert client.get(reverse("admin:automation_rule_changelist")).status_code == 200
    assert client.get(reverse("admin:automation_rule_add")).status_code == 200
    data = rule_post(
        {"pipeline": pipeline.pk, "stage": stages[2].pk, "acting_user": admin.pk},
        actions=[{"kind": "create_task", "title": "Call", "due_in_days": -5, "position": 0}],
    )
    answer = client.post(reverse("admin:automation_rule_add"), data)
    assert answer.status_code == 200
    assert "A task cannot be due in the past" in answer.content.decode()
    assert not Rule.objects.exists()

    data["actions-0-due_in_days"] = "2"
    answer = client.post(reverse("admin:automation_rule_add"), data)
    assert answer.status_code == 302
    assert Rule.objects.get().actions.get().due_in_days == 2


def test_the_settings_page_reads_a_fixed_number_of_queries(
    manager_client, django_assert_max_num_queries
):
    from django.contrib.auth.models import Group

    client, manager, _, stages = manager_client
    group = Group.objects.create(name="Closers")
    for n in range(8):
        rule = Rule.objects.create(
            name=f"R{n}", trigger=Trigger.STAGE_ENTERED, stage=stages[n % 4], acting_user=manager
        )
        rule.conditions.create(kind="owner_is", user=manager)
        rule.conditions.create(kind="owner_in_group", group=group)
        rule.actions.create(kind="notify", title="hi")
    with django_assert_max_num_queries(12):
        assert client.get(reverse("automation:rules")).status_code == 200


def test_line_breaks_in_a_deal_name_never_reach_the_subject_header(rep_client):
    client, rep = rep_client
    deal = factories.OpportunityFactory(assigned_to=rep, name="Acme\r\nBcc: x@evil.test")
    client.post(
        reverse("automation:email", args=[deal.pk]), {"subject": "About {deal}", "body": "Hi"}
    )
    assert mail.outbox[0].subject == "About Acme Bcc: x@evil.test"
    assert mail.outbox[0].bcc == []
