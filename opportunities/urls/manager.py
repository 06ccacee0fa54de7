"""The manager's list, summary, charts, CSV export and import."""

urlpatterns = []
