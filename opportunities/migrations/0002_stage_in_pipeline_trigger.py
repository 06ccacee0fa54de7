"""The database refuses an opportunity whose stage belongs to another pipeline.

A CHECK constraint cannot look at another table, so this is a trigger, written for
each backend we support. The service and the form check the same rule first, with a
friendly message; the trigger is the last line of defence (admin edits, raw SQL).
"""

from django.db import migrations

SQLITE_CREATE = [
    f"""
    CREATE TRIGGER opportunity_stage_in_pipeline_{event.lower()}
    BEFORE {event} ON opportunities_opportunity
    FOR EACH ROW
    WHEN (SELECT pipeline_id FROM pipelines_stage WHERE id = NEW.stage_id) IS NOT NEW.pipeline_id
    BEGIN
        SELECT RAISE(ABORT, 'CHECK constraint failed: opportunity stage must belong to its pipeline');
    END;
    """
    for event in ("INSERT", "UPDATE")
]
SQLITE_DROP = [
    f"DROP TRIGGER IF EXISTS opportunity_stage_in_pipeline_{event}"
    for event in ("insert", "update")
]

POSTGRES_CREATE = [
    """
    CREATE OR REPLACE FUNCTION opportunity_stage_in_pipeline() RETURNS trigger AS $$
    BEGIN
        IF NOT EXISTS (
            SELECT 1 FROM pipelines_stage WHERE id = NEW.stage_id AND pipeline_id = NEW.pipeline_id
        ) THEN
            RAISE EXCEPTION 'opportunity stage must belong to its pipeline'
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NEW;
    END;
    $$ LANGUAGE plpgsql;
    """,
    """
    CREATE TRIGGER opportunity_stage_in_pipeline
    BEFORE INSERT OR UPDATE OF stage_id, pipeline_id ON opportunities_opportunity
    FOR EACH ROW EXECUTE FUNCTION opportunity_stage_in_pipeline();
    """,
]
POSTGRES_DROP = [
    "DROP TRIGGER IF EXISTS opportunity_stage_in_pipeline ON opportunities_opportunity",
    "DROP FUNCTION IF EXISTS opportunity_stage_in_pipeline()",
]


def create(apps, schema_editor):
    statements = {"sqlite": SQLITE_CREATE, "postgresql": POSTGRES_CREATE}.get(
        schema_editor.connection.vendor, []
    )
    for statement in statements:
        schema_editor.execute(statement)


def drop(apps, schema_editor):
    statements = {"sqlite": SQLITE_DROP, "postgresql": POSTGRES_DROP}.get(
        schema_editor.connection.vendor, []
    )
    for statement in statements:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("opportunities", "0001_initial"),
        ("pipelines", "0001_initial"),
    ]

    operations = [migrations.RunPython(create, drop)]
