from django.urls import path

from automation import views

app_name = "automation"

urlpatterns = [
    path("notifications/", views.notification_list, name="notifications"),
    path("notifications/bell/", views.bell, name="bell"),
    path("notifications/read/", views.mark_all_read, name="mark_all_read"),
    path("notifications/email/", views.email_setting, name="email_setting"),
    path("opportunities/<int:pk>/", views.opportunity_panel, name="panel"),
    path("opportunities/<int:pk>/email/", views.opportunity_email, name="email"),
    path("rules/", views.rule_list, name="rules"),
    path("rules/new/", views.rule_create, name="rule_create"),
    path("rules/<int:pk>/", views.rule_edit, name="rule_edit"),
    path("rules/<int:pk>/toggle/", views.rule_toggle, name="rule_toggle"),
]
