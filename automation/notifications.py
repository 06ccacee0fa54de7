"""In-app notifications and their e-mail copies (Django's e-mail backend)."""

from django.conf import settings
from django.core.mail import send_mass_mail
from django.db import transaction
from django.utils import timezone

from automation.models import Notification, NotificationSetting


def notify(*, users, text: str, opportunity=None) -> list[Notification]:
    """Create one notification per user and e-mail those who did not turn e-mails off.

    Invariant: the e-mails leave only after the transaction commits, so a rolled-back
    run sends nothing.
    """
    users = [user for user in {user.pk: user for user in users}.values() if user.is_active]
    notes = Notification.objects.bulk_create(
        [Notification(user=user, opportunity=opportunity, text=text[:300]) for user in users]
    )
    opted_out = set(
        NotificationSetting.objects.filter(user__in=users, email=False).values_list(
            "user_id", flat=True
        )
    )
    messages = [
        (f"[Pipeline CRM] {' '.join(text.split())[:120]}", text, None, [user.email])
        for user in users
        if user.email and user.pk not in opted_out
    ]
    if messages:
        transaction.on_commit(lambda: send_mass_mail(messages, fail_silently=False))
    return notes


def unread_count(user) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).count()


def notifications_of(user, limit: int = 20) -> list[Notification]:
    return list(
        Notification.objects.filter(user=user).select_related("opportunity").order_by("-id")[:limit]
    )


def mark_all_read(*, user) -> int:
    return Notification.objects.filter(user=user, read_at__isnull=True).update(
        read_at=timezone.now()
    )


def email_enabled(user) -> bool:
    setting = NotificationSetting.objects.filter(user=user).first()
    return setting.email if setting else True


def email_set(*, user, enabled: bool) -> None:
    NotificationSetting.objects.update_or_create(user=user, defaults={"email": enabled})


def default_from_email() -> str:
    return settings.DEFAULT_FROM_EMAIL
