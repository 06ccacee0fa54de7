"""The forecast page: what the visible open deals should bring in, month by month."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from opportunities.selectors_forecast import sales_forecast


@require_GET
def forecast(request):
    context = {"nav": "forecast", "forecast": sales_forecast(request.user)}
    return render(request, "opportunities/forecast.html", context)
