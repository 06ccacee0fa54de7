"""The REST API at /api/v1/ (django-ninja), shaped like HighLevel's opportunities API.

Authentication is a personal access token (`Authorization: Bearer crm_…`) that acts as
its user. Every error answers `{"statusCode", "message"}`; each token may send
settings.API_RATE_LIMIT requests per window (429 with Retry-After beyond that).
Routers parse input, call a service or selector and return: they hold no rule.
"""

import logging
import time
from functools import wraps

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.urls import URLPattern, URLResolver
from ninja import NinjaAPI
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.security import HttpBearer
from ninja.throttling import BaseThrottle

from integrations.tokens import api_token_authenticate
from opportunities.errors import StaleVersion

logger = logging.getLogger(__name__)


class TokenAuth(HttpBearer):
    openapi_description = "A personal access token from Settings → API tokens."

    def authenticate(self, request, token):
        row = api_token_authenticate(token)
        if row is None:
            return None
        request.user = row.user
        return row


class TokenRateThrottle(BaseThrottle):
    """A fixed window per token in Django's cache (100 requests / 10 s by default)."""

    def allow_request(self, request) -> bool:
        limit, window = settings.API_RATE_LIMIT
        token = getattr(request, "auth", None)
        ident = f"token{token.pk}" if token is not None else f"ip{request.META.get('REMOTE_ADDR')}"
        key = f"api-rate:{ident}:{int(time.time() // window)}"
        cache.add(key, 0, window + 1)
        try:
            count = cache.incr(key)
        except ValueError:  # expired between add and incr
            cache.set(key, 1, window + 1)
            count = 1
        return count <= limit

    def wait(self) -> float:
        window = settings.API_RATE_LIMIT[1]
        return max(window - time.time() % window, 1)


api = NinjaAPI(
    title="Pipeline CRM API",
    version="1",
    description=(
        "Opportunities and pipelines, shaped like HighLevel's public opportunities API: "
        "the same paths under /api/v1/, the same field names, ids as strings. "
        "Authenticate with `Authorization: Bearer <personal access token>`."
    ),
    auth=TokenAuth(),
    throttle=[TokenRateThrottle()],
    urls_namespace="api",
    docs_url=None,  # /api/v1/docs is our own page (works offline), see integrations.views
)


def error_response(request, status: int, message: str):
    return api.create_response(request, {"statusCode": status, "message": message}, status=status)


def _validation_message(errors) -> str:
    parts = []
    for error in errors[:10]:
        location = [str(item) for item in error.get("loc", ())]
        where = ".".join(location[1:]) or (location[0] if location else "")
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    return "; ".join(parts) or "Invalid input."


def _django_validation_message(exc: DjangoValidationError) -> str:
    if hasattr(exc, "error_dict"):
        return "; ".join(
            f"{field}: {' '.join(messages)}" if field != "__all__" else " ".join(messages)
            for field, messages in exc.message_dict.items()
        )
    return " ".join(exc.messages)


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    message = exc.message
    if exc.status_code == 401:
        message = "Missing or invalid token: send Authorization: Bearer <personal access token>."
    elif exc.status_code == 429:
        message = "Too many requests for this token; retry after the time in Retry-After."
    return error_response(request, exc.status_code, message)


@api.exception_handler(NinjaValidationError)
def _validation_error(request, exc: NinjaValidationError):
    return error_response(request, 422, _validation_message(exc.errors))


@api.exception_handler(DjangoValidationError)
def _rule_refused(request, exc: DjangoValidationError):
    return error_response(request, 422, _django_validation_message(exc))


@api.exception_handler(PermissionDenied)
def _forbidden(request, exc: PermissionDenied):
    return error_response(request, 403, str(exc) or "You are not allowed to do this.")


@api.exception_handler(Http404)
def _not_found(request, exc):
    return error_response(request, 404, str(exc) or "Not found.")


@api.exception_handler(ObjectDoesNotExist)
def _missing(request, exc):
    return error_response(request, 404, "Not found (or not visible to this token's user).")


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return error_response(request, 400, "The request body is too large.")


@api.exception_handler(StaleVersion)
def _stale(request, exc: StaleVersion):
    return error_response(
        request, 409, "The opportunity was changed since you read it: read it again and retry."
    )


@api.exception_handler(Exception)
def _unexpected(request, exc: Exception):
    logger.exception("API error on %s %s", request.method, request.path)
    return error_response(request, 500, "Internal error.")


def _register_routers() -> None:
    from integrations.api import router as webhooks_router
    from opportunities.api import events_router, opportunities_router

    api.add_router("/opportunities", opportunities_router)
    api.add_router("/events", events_router)
    api.add_router("/webhooks", webhooks_router)


_register_routers()


def _without_login_redirect(view):
    """API views answer 401 themselves; LoginRequiredMiddleware must not redirect them."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        return view(request, *args, **kwargs)

    wrapper.login_required = False
    return wrapper


def api_urls():
    patterns, app_name, namespace = api.urls
    for pattern in patterns:
        if isinstance(pattern, URLPattern):
            pattern.callback = _without_login_redirect(pattern.callback)
        elif isinstance(pattern, URLResolver):  # pragma: no cover - ninja uses flat patterns
            raise RuntimeError("unexpected nested API urls")
    return patterns, app_name, namespace
