"""Sales managers manage webhook subscriptions (admins can as superusers)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations


def grant(apps, schema_editor):
    app_config = apps.get_app_config("integrations")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Sales manager")
    group.permissions.add(
        Permission.objects.get(content_type__app_label="integrations", codename="manage_webhooks")
    )


def revoke(apps, schema_editor):
    Permission = apps.get_model("auth", "Permission")
    Permission.objects.filter(
        content_type__app_label="integrations", codename="manage_webhooks"
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0001_initial"),
        ("opportunities", "0003_roles"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
