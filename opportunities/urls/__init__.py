"""URLs of the opportunities app, one module per area so each stays small."""

from opportunities.urls import board, deal_fields, manager, records

app_name = "opportunities"

urlpatterns = [
    *board.urlpatterns,
    *records.urlpatterns,
    *manager.urlpatterns,
    *deal_fields.urlpatterns,
]
