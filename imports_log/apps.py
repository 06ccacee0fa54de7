from django.apps import AppConfig


class ImportsLogConfig(AppConfig):
    name = "imports_log"
    verbose_name = "CSV imports"
    default_auto_field = "django.db.models.BigAutoField"
