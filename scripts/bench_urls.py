"""The product's URLs plus two hello-world views through the same middleware.

/bench/hello/ is anonymous; /bench/hello-signed-in/ needs a session (like every page:
session, user, CSRF cookie, CSP header), the ceiling the board and the move compare to.
"""

from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.middleware.csrf import get_token
from django.urls import include, path


@login_not_required
def hello(request):
    return HttpResponse("hello", content_type="text/plain")


def hello_signed_in(request):
    get_token(request)  # a page with a form would
    return HttpResponse(f"hello {request.user.get_username()}", content_type="text/plain")


urlpatterns = [
    path("bench/hello/", hello),
    path("bench/hello-signed-in/", hello_signed_in),
    path("", include("crm.urls")),
]
