"""Notifications (the header bell), the deal's automation panel, Settings → Automation."""

from django.contrib import messages
from django.contrib.auth.decorators import permission_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from automation import notifications
from automation.forms import (
    ActionFormSet,
    ConditionFormSet,
    ContactEmailForm,
    EmailSettingForm,
    RuleForm,
)
from automation.models import EmailTemplate, Rule
from automation.placeholders import email_previews
from automation.selectors import recent_runs, rules_for_settings, runs_for_opportunity
from automation.services import contact_email_send
from opportunities.views.htmx import visible_opportunity_or_404


@require_GET
def bell(request):
    """The header bell: unread count and the latest notifications (htmx, polled)."""
    return _bell(request)


def _bell(request):
    return render(
        request,
        "automation/notifications.html#bell",
        {
            "unread": notifications.unread_count(request.user),
            "items": notifications.notifications_of(request.user, limit=8),
            "can_manage_rules": request.user.has_perm("automation.view_rule"),
        },
    )


@require_GET
def notification_list(request):
    return render(
        request,
        "automation/notifications.html",
        {
            "unread": notifications.unread_count(request.user),
            "items": notifications.notifications_of(request.user, limit=100),
            "email_form": EmailSettingForm(
                initial={"email": notifications.email_enabled(request.user)}
            ),
        },
    )


@require_POST
def mark_all_read(request):
    notifications.mark_all_read(user=request.user)
    if request.htmx:
        return _bell(request)
    return redirect("automation:notifications")


@require_POST
def email_setting(request):
    form = EmailSettingForm(request.POST)
    form.is_valid()
    enabled = form.cleaned_data.get("email", False)
    notifications.email_set(user=request.user, enabled=enabled)
    messages.success(
        request, "Notifications will also come by e-mail." if enabled else "No more e-mails."
    )
    return redirect("automation:notifications")


def _panel(request, opportunity, form=None, status=200):
    return render(
        request,
        "automation/panel.html#panel",
        {
            "opportunity": opportunity,
            "runs": runs_for_opportunity(opportunity),
            "form": form or ContactEmailForm(),
            "templates": list(EmailTemplate.objects.all()),
        },
        status=status,
    )


@require_GET
def opportunity_panel(request, pk: int):
    """The deal's "Send e-mail" form and what automation did on it (loaded by htmx)."""
    opportunity = visible_opportunity_or_404(request, pk, related=("stage", "contact"))
    form = None
    template = EmailTemplate.objects.filter(pk=_int(request.GET.get("template"))).first()
    if template is not None:  # choosing a template fills the form to edit before sending
        form = ContactEmailForm(
            initial={"template": template, "subject": template.subject, "body": template.body}
        )
    return _panel(request, opportunity, form)


def _int(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@require_POST
def opportunity_email(request, pk: int):
    opportunity = visible_opportunity_or_404(
        request, pk, related=("stage", "contact", "assigned_to")
    )
    form = ContactEmailForm(request.POST)
    if form.is_valid():
        try:
            contact_email_send(
                opportunity=opportunity,
                user=request.user,
                subject=form.cleaned_data["subject"],
                body=form.cleaned_data["body"],
            )
        except (ValidationError, PermissionDenied) as exc:
            form.add_error(None, "; ".join(getattr(exc, "messages", [str(exc)])))
        else:
            messages.success(request, f"E-mail sent to {opportunity.contact.email}.")
            if request.htmx:
                return _panel(request, opportunity)
            return redirect(reverse("opportunities:detail", args=[pk]))
    if request.htmx:
        return _panel(request, opportunity, form, status=422)
    return render(
        request,
        "automation/panel.html",
        {"opportunity": opportunity, "runs": [], "form": form, "templates": []},
        status=422,
    )


@permission_required("automation.view_rule", raise_exception=True)
def rule_list(request):
    """Settings → Automation: the rules in order, flagged problems and the latest runs."""
    return render(
        request,
        "automation/rules.html",
        {
            "rules": rules_for_settings(),
            "runs": recent_runs(),
            "can_change": request.user.has_perm("automation.change_rule"),
        },
    )


@require_POST
@permission_required("automation.change_rule", raise_exception=True)
def rule_toggle(request, pk: int):
    rule = get_object_or_404(Rule, pk=pk)
    Rule.objects.filter(pk=pk).update(enabled=not rule.enabled)
    state = "disabled" if rule.enabled else "enabled"
    messages.success(request, f"Rule “{rule.name}” {state}.")
    return redirect("automation:rules")


def _rule_form(request, rule: Rule | None):
    """Create or edit a rule with its conditions and actions, all validated together."""
    rule = rule or Rule(acting_user=request.user)
    data = request.POST if request.method == "POST" else None
    form = RuleForm(data, instance=rule, editor=request.user)
    # The formsets check their rows against the rule as submitted (its pipeline).
    if data is not None and form.is_valid():
        rule = form.save(commit=False)
    conditions = ConditionFormSet(data, instance=rule, prefix="conditions")
    actions = ActionFormSet(data, instance=rule, prefix="actions")
    if data is not None and form.is_valid() and conditions.is_valid() and actions.is_valid():
        with transaction.atomic():
            rule.problem = ""
            rule.save()
            conditions.save()
            actions.save()
        messages.success(request, f"Rule “{rule.name}” saved.")
        for preview in email_previews(rule):
            messages.info(request, preview)
        return redirect("automation:rules")
    return render(
        request,
        "automation/rule_form.html",
        {"form": form, "conditions": conditions, "actions": actions, "rule": rule},
        status=422 if data is not None else 200,
    )


@permission_required("automation.add_rule", raise_exception=True)
def rule_create(request):
    return _rule_form(request, None)


@permission_required("automation.change_rule", raise_exception=True)
def rule_edit(request, pk: int):
    return _rule_form(request, get_object_or_404(Rule, pk=pk))
