"""Groups "Sales rep" and "Sales manager" with their model permissions.

Roles are data the app relies on, so a migration creates them; demo users are not
(seed_demo creates those).
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

REP_PERMISSIONS = [
    "opportunities.view_opportunity",
    "opportunities.add_opportunity",
    "opportunities.change_opportunity",
    "opportunities.view_contact",
    "opportunities.add_contact",
    "opportunities.change_contact",
    "opportunities.view_note",
    "opportunities.add_note",
    "opportunities.change_note",
    "opportunities.delete_note",
    "opportunities.view_task",
    "opportunities.add_task",
    "opportunities.change_task",
    "opportunities.view_communication",
    "opportunities.add_communication",
    "opportunities.view_lostreason",
    "pipelines.view_pipeline",
    "pipelines.view_stage",
]
MANAGER_PERMISSIONS = [
    *REP_PERMISSIONS,
    "opportunities.view_all_opportunities",
    "opportunities.export_opportunities",
    "opportunities.import_opportunities",
    "opportunities.delete_task",
    "opportunities.change_communication",
]
ROLES = {"Sales rep": REP_PERMISSIONS, "Sales manager": MANAGER_PERMISSIONS}


def create_roles(apps, schema_editor):
    # Permissions normally appear after migrate (post_migrate); make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        for code in codes:
            app_label, codename = code.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )


def remove_roles(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLES).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("opportunities", "0002_stage_in_pipeline_trigger"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(create_roles, remove_roles)]
