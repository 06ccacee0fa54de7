"""The manager's list, summary, charts, CSV export and import.

No <int:pk> segment here: /opportunities/<pk>/... belongs to the opportunity record.
"""

from django.urls import path

from opportunities.views import bulk, manager

urlpatterns = [
    path("opportunities/", manager.opportunity_list, name="list"),
    path("opportunities/export.csv", manager.export_csv, name="export"),
    path("opportunities/import/", manager.import_csv, name="import"),
    path("opportunities/import/<uuid:run_id>/", manager.import_progress, name="import_progress"),
    path("opportunities/bulk/", bulk.bulk_preview, name="bulk_preview"),
    path("opportunities/bulk/run/", bulk.bulk_run, name="bulk_run"),
]
