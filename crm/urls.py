from django.contrib import admin
from django.urls import include, path

from crm import views
from crm.api import api_urls
from integrations.views import api_docs

admin.site.site_header = "Pipeline CRM administration"
admin.site.site_title = "Pipeline CRM admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/docs", api_docs, name="api-docs"),
    path("api/v1/", api_urls()),
    path("settings/", include("integrations.urls")),
    path("automation/", include("automation.urls")),
    path("", include("opportunities.urls")),
]
