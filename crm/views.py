"""Site-wide views: the home redirect and the health check."""

from django.contrib.auth.decorators import login_not_required
from django.db import connection
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from opportunities.selectors import pipelines_for_board


def home(request):
    """Send a signed-in user to the board of the first pipeline that is not archived."""
    pipelines = pipelines_for_board()
    if not pipelines:
        return render(request, "pipelines/no_pipelines.html", status=200)
    return redirect("opportunities:board", pipeline_id=pipelines[0].pk)


@login_not_required
@never_cache
@require_GET
def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return HttpResponse("ok", content_type="text/plain")
