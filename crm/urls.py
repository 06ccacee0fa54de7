from django.contrib import admin
from django.urls import include, path

from crm import views

admin.site.site_header = "Pipeline CRM administration"
admin.site.site_title = "Pipeline CRM admin"

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("automation/", include("automation.urls")),
    path("", include("opportunities.urls")),
]
