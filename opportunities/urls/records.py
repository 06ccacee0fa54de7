from django.urls import path

from opportunities.views import records

urlpatterns = [
    path("opportunities/<int:pk>/", records.detail, name="detail"),
]
