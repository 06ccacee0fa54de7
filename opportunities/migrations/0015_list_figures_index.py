"""The board's column totals and the manager list's figures read index entries only.

- opp_list_stages gains `value`: for the manager's board totals (count and value per
  stage and status of a pipeline) SQLite's planner picks this index over
  opp_pipeline_totals; without `value` it fetched every deal's row (103 ms -> 21 ms at
  N = 100,000).
- opp_list_figures: the list's one read of every deal of the set, grouped by (status,
  stage) in the index's order (summary per status, funnel per stage, abandoned count),
  and the "open and stale" count as one range per stage (status, stage, entered before
  the stage's rotting date).

Shapes per backend as in 0013: on SQLite `deleted_at` leads the index (a covering index
must hold the partial condition's column); on PostgreSQL a partial index with the read
columns in INCLUDE. Names are the same on both, so the reverse is one DROP each.
"""

from django.db import migrations

TABLE = "opportunities_opportunity"
INDEXES = {
    "opp_list_stages": {
        "sqlite": "(deleted_at, stage_id, pipeline_id, status, stage_entered_at, closed_at, value)",
        "postgresql": "(stage_id, pipeline_id) "
        "INCLUDE (status, stage_entered_at, closed_at, value) WHERE deleted_at IS NULL",
    },
    "opp_list_figures": {
        "sqlite": "(deleted_at, status, stage_id, stage_entered_at, closed_at, value, "
        "days_to_close)",
        "postgresql": "(status, stage_id, stage_entered_at) "
        "INCLUDE (closed_at, value, days_to_close) WHERE deleted_at IS NULL",
    },
}
# opp_list_stages as 0013 made it, for the reverse.
PREVIOUS = {
    "opp_list_stages": {
        "sqlite": "(deleted_at, stage_id, pipeline_id, status, stage_entered_at, closed_at)",
        "postgresql": "(stage_id, pipeline_id) INCLUDE (status, stage_entered_at, closed_at) "
        "WHERE deleted_at IS NULL",
    },
}


def _build(schema_editor, indexes: dict) -> None:
    vendor = schema_editor.connection.vendor
    for name, shapes in indexes.items():
        # Another backend gets the plain (portable) shape without the partial condition.
        shape = shapes.get(vendor, shapes["sqlite"])
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")
        schema_editor.execute(f"CREATE INDEX {name} ON {TABLE} {shape}")


def create(apps, schema_editor):
    _build(schema_editor, INDEXES)


def restore(apps, schema_editor):
    schema_editor.execute("DROP INDEX IF EXISTS opp_list_figures")
    _build(schema_editor, PREVIOUS)


class Migration(migrations.Migration):
    dependencies = [("opportunities", "0014_board_close_date_index")]

    operations = [migrations.RunPython(create, restore)]
