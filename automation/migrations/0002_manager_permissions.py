"""Managers see Settings → Automation and switch rules on and off."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CODES = ["view_rule", "change_rule", "view_rulerun"]


def grant(apps, schema_editor):
    app_config = apps.get_app_config("automation")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Sales manager")
    group.permissions.add(
        *Permission.objects.filter(content_type__app_label="automation", codename__in=CODES)
    )


class Migration(migrations.Migration):
    dependencies = [
        ("automation", "0001_initial"),
        ("opportunities", "0003_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
