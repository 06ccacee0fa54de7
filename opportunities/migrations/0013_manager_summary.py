"""Indexes that let the manager list's summary, charts and funnel read index entries only.

The list's aggregates (count and value per status, days to close, lost reasons, won and
lost by month, the funnel's count per stage) read every live deal of the set. From the
table that is a wide row per deal (names, ranks, dates); from these indexes it is a few
columns per deal, several times less to read (issue 15: the list at N = 100,000 was
4.6x its time at N = 10,000, 80% of it in these queries).

- SQLite uses an index alone ("covering") only when it holds every column the query
  names, the partial condition's column included: so `deleted_at` leads the index
  instead of being its condition (every live deal has it NULL, one range).
- PostgreSQL: partial indexes on live deals with the summed columns in INCLUDE, for
  index-only scans.

Declared here rather than in the model's Meta: the shape differs per backend. Names
are the same on both, so the reverse is one DROP each.
"""

from django.db import migrations

TABLE = "opportunities_opportunity"
INDEXES = {
    # Summary figures, lost reasons, the monthly chart and its first/last month.
    "opp_list_closed": {
        "sqlite": "(deleted_at, status, closed_at, value, days_to_close, lost_reason_id)",
        "postgresql": "(status, closed_at) INCLUDE (value, days_to_close, lost_reason_id) "
        "WHERE deleted_at IS NULL",
    },
    # The funnel (live deals per stage and pipeline) and the quick views' counts (closed
    # this month, abandoned, open and stale: the stage's rotting days since entering it).
    "opp_list_stages": {
        "sqlite": "(deleted_at, stage_id, pipeline_id, status, stage_entered_at, closed_at)",
        "postgresql": "(stage_id, pipeline_id) INCLUDE (status, stage_entered_at, closed_at) "
        "WHERE deleted_at IS NULL",
    },
}


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    for name, shapes in INDEXES.items():
        # Another backend gets the plain (portable) shape without the partial condition.
        shape = shapes.get(vendor, shapes["sqlite"])
        schema_editor.execute(f"CREATE INDEX IF NOT EXISTS {name} ON {TABLE} {shape}")


def drop(apps, schema_editor):
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [("opportunities", "0012_custom_value_text_index")]

    operations = [migrations.RunPython(create, drop)]
