"""Managers also create rules on Settings → Automation."""

from django.db import migrations


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group = Group.objects.filter(name="Sales manager").first()
    if group is not None:
        group.permissions.add(
            *Permission.objects.filter(content_type__app_label="automation", codename="add_rule")
        )


class Migration(migrations.Migration):
    dependencies = [("automation", "0002_manager_permissions")]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
