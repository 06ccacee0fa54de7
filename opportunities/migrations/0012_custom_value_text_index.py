"""An index that serves the custom field "contains" filter (issue 13).

The filter is `field = F AND text LIKE '%…%'` (Django's icontains), run as a subquery
of the manager list. A leading `%` means no index can jump to the matches, so what
matters is how much is read per candidate row:

- SQLite: a covering index on (field, text, opportunity). The LIKE is checked on the
  field's index entries and the deal ids come from the same entries, never from the
  table's wide rows. SQLite's LIKE is case-insensitive (ASCII) wherever it runs, so the
  filter keeps matching exactly what it matched before.
- PostgreSQL: icontains is `UPPER(text) LIKE UPPER(…)`; a pg_trgm GIN index on
  UPPER(text) finds the rows holding the pattern's trigrams. CREATE EXTENSION needs a
  superuser (or a trusted extension and CREATE on the database), so it is tried in a
  savepoint; without it, no b-tree can serve a `%…%` pattern and a b-tree holding the
  text would refuse long texts (2.7 KB index row limit), so the fallback is a b-tree on
  (field, opportunity) for the field's non-empty text rows only: the filter (which
  adds `text <> ''`) reads just those instead of the field's rows of every type.

Declared here rather than in the model's Meta: the SQL differs per backend and the
trigram index depends on the extension. Names are the same on both, so the reverse
is one DROP.
"""

from django.db import DatabaseError, migrations, transaction

INDEX = "custom_value_text"
TABLE = "opportunities_customfieldvalue"


def trigram_available(schema_editor) -> bool:
    """pg_trgm is installed, or could be created here (tried in a savepoint)."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone():
            return True
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        if not cursor.fetchone():
            return False
    try:
        with transaction.atomic(using=schema_editor.connection.alias):
            schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError:  # not permitted to this role: the b-tree fallback
        return False
    return True


def create(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor == "sqlite":
        schema_editor.execute(
            f'CREATE INDEX "{INDEX}" ON "{TABLE}" ("field_id", "text", "opportunity_id")'
        )
    elif vendor == "postgresql":
        if trigram_available(schema_editor):
            schema_editor.execute(
                f'CREATE INDEX "{INDEX}" ON "{TABLE}" USING gin (UPPER("text") gin_trgm_ops)'
            )
        else:
            schema_editor.execute(
                f'CREATE INDEX "{INDEX}" ON "{TABLE}" ("field_id", "opportunity_id") '
                "WHERE \"text\" <> ''"
            )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor in ("sqlite", "postgresql"):
        schema_editor.execute(f'DROP INDEX IF EXISTS "{INDEX}"')


class Migration(migrations.Migration):
    dependencies = [("opportunities", "0011_contact_history")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
