"""Personal access tokens: created and revoked by their user, stored as a SHA-256 hash.

A token is 32 random bytes; hashing it without a salt is enough (nothing to guess) and
lets a request find its token with one indexed lookup.
"""

import hashlib
import secrets
from datetime import timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from integrations.models import ApiToken

TOKEN_PREFIX = "crm_"
# last_used_at is written at most this often per token (not on every request).
LAST_USED_PRECISION = timedelta(minutes=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@transaction.atomic
def api_token_create(*, user, name: str) -> tuple[ApiToken, str]:
    """A new token for `user`; returns the row and the token itself (shown once)."""
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": ["Give the token a name, e.g. the script that uses it."]})
    if len(name) > 100:
        raise ValidationError({"name": ["At most 100 characters."]})
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken.objects.create(
        user=user, name=name, prefix=token[: len(TOKEN_PREFIX) + 6], token_hash=_hash(token)
    )
    return row, token


@transaction.atomic
def api_token_revoke(*, token: ApiToken, user) -> ApiToken:
    """Only the owner (or a superuser) revokes; revoking twice changes nothing."""
    if token.user_id != user.pk and not user.is_superuser:
        raise PermissionDenied("This token belongs to someone else.")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
    return token


def api_token_authenticate(token: str) -> ApiToken | None:
    """The active token of an active user matching `token`, or None."""
    if not token or not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = (
        ApiToken.objects.select_related("user")
        .filter(token_hash=_hash(token), revoked_at__isnull=True, user__is_active=True)
        .first()
    )
    if row is None:
        return None
    now = timezone.now()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_PRECISION:
        ApiToken.objects.filter(pk=row.pk).update(last_used_at=now)
        row.last_used_at = now
    return row


def api_tokens_of(user):
    return ApiToken.objects.filter(user=user)
