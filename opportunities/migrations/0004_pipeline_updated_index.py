from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("opportunities", "0003_roles"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="opportunity",
            index=models.Index(
                fields=["pipeline", "updated_at", "version"], name="opp_pipeline_updated"
            ),
        ),
    ]
