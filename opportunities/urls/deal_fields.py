"""The record's deal fields, the trash and the forecast."""

from django.urls import path

from opportunities.views import forecast, record_fields, trash

urlpatterns = [
    path("opportunities/<int:pk>/fields/", record_fields.fields_save, name="fields_save"),
    path("opportunities/<int:pk>/followers/", record_fields.followers_save, name="followers"),
    path("opportunities/<int:pk>/pipeline/", record_fields.pipeline_move, name="pipeline_move"),
    path("opportunities/<int:pk>/delete/", record_fields.delete, name="delete"),
    path("opportunities/trash/", trash.trash, name="trash"),
    path("opportunities/trash/<int:pk>/restore/", trash.restore, name="restore"),
    path("forecast/", forecast.forecast, name="forecast"),
]
