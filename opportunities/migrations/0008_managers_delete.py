"""Managers may delete opportunities (to the trash; they restore from it too).

Also brings back, on SQLite, the stage-in-pipeline triggers of 0002: 0007 rebuilt the
opportunity table (SQLite adds a CHECK constraint by copying the table), and a rebuilt
table loses its triggers.
"""

import importlib

from django.db import migrations

TRIGGERS = importlib.import_module("opportunities.migrations.0002_stage_in_pipeline_trigger")

ADDED = {"Sales manager": ["opportunities.delete_opportunity"]}


def grant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codes in ADDED.items():
        group = Group.objects.filter(name=group_name).first()
        if group is None:
            continue
        for code in codes:
            app_label, codename = code.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def recreate_sqlite_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for statement in [*TRIGGERS.SQLITE_DROP, *TRIGGERS.SQLITE_CREATE]:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("opportunities", "0007_deal_details")]

    operations = [
        migrations.RunPython(grant, migrations.RunPython.noop),
        migrations.RunPython(recreate_sqlite_triggers, migrations.RunPython.noop),
    ]
