"""The statements of a deal's write, with their SQL built once per shape.

A drag writes three rows: the deal's guarded UPDATE, a history row and an event. Built
through the ORM (an update() and two bulk_create() calls) those statements cost more
Python than everything else in the write, and on SQLite that Python runs while the one
write lock is held, so every other writer waits for it. Here the SQL is made once per
table and set of columns from the models' fields, and each call only prepares its values
the way the ORM would (`get_db_prep_save`: dates, decimals, JSON per backend).
"""

from functools import cache, lru_cache

from django.db import DEFAULT_DB_ALIAS, connection, connections

from opportunities.models import Opportunity


def _db_value(field, value, db):
    if field.remote_field is not None and hasattr(value, "_meta"):
        value = value.pk  # a related instance: its key
    return field.get_db_prep_save(value, db)


def _this_thread_connection():
    """The connection itself: `django.db.connection` is a proxy that looks the thread's
    connection up on every attribute read, a dozen times per value prepared."""
    return connections[DEFAULT_DB_ALIAS]


# Rows per INSERT statement, as bulk_create batches them (well under SQLite's limit of
# bound parameters).
INSERT_BATCH = 500


def _insert_fields(model) -> list:
    return [field for field in model._meta.concrete_fields if not field.primary_key]


@lru_cache(maxsize=64)
def _insert_sql(model, vendor: str, rows: int) -> str:
    quote = connection.ops.quote_name
    fields = _insert_fields(model)
    columns = ", ".join(quote(field.column) for field in fields)
    row = f"({', '.join(['%s'] * len(fields))})"
    return f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES {', '.join([row] * rows)}"


def _column_values(fields: list, row, db) -> list:
    """A new row's values for `fields`: from an unsaved instance as save() would take
    them, or from a dict of every column's value by attname (no instance built)."""
    if isinstance(row, dict):
        return [_db_value(field, row[field.attname], db) for field in fields]
    return [_db_value(field, field.pre_save(row, True), db) for field in fields]


def insert_statements(model, objects: list) -> list[tuple[str, list]]:
    """The INSERTs of new rows of `model` (instances, or dicts as `_column_values` takes
    them) as (sql, params), up to INSERT_BATCH rows each, their values prepared now: a
    write can build them before it takes the write lock."""
    fields = _insert_fields(model)
    db = _this_thread_connection()
    statements = []
    for start in range(0, len(objects), INSERT_BATCH):
        batch = objects[start : start + INSERT_BATCH]
        params = [value for row in batch for value in _column_values(fields, row, db)]
        statements.append((_insert_sql(model, db.vendor, len(batch)), params))
    return statements


def execute_all(statements: list[tuple[str, list]]) -> None:
    with connection.cursor() as cursor:
        for sql, params in statements:
            cursor.execute(sql, params)


@cache
def _update_sql(attrs: tuple[str, ...], vendor: str, rank_free: bool) -> tuple[str, list]:
    quote = connection.ops.quote_name
    meta = Opportunity._meta
    fields = [meta.get_field(attr) for attr in attrs] + [meta.get_field("updated_at")]
    table, pk = quote(meta.db_table), quote(meta.pk.column)
    version = quote(meta.get_field("version").column)
    sets = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {table} SET {sets}, {version} = {version} + 1 WHERE {pk} = %s AND {version} = %s"
    if rank_free:
        # The live cards only, as the (stage, rank, id) index holds them.
        stage, rank = quote(meta.get_field("stage").column), quote(meta.get_field("rank").column)
        deleted = quote(meta.get_field("deleted_at").column)
        sql += (
            f" AND NOT EXISTS (SELECT 1 FROM {table} AS taken WHERE taken.{stage} = %s"
            f" AND taken.{rank} = %s AND taken.{pk} <> %s AND taken.{deleted} IS NULL)"
        )
    return sql, fields


def update_statement(
    opportunity: Opportunity, version: int, changes: dict, now, *, rank_free: bool = False
) -> tuple[str, list]:
    """The guarded UPDATE of the deal's `changes` (attribute -> plain value), its
    updated_at and version, as (sql, params). With `rank_free`, it also changes nothing
    when another deal of the new stage holds the new rank (`changes` has both): a drop
    planned outside the write lock finds out that another took its key meanwhile."""
    db = _this_thread_connection()
    sql, fields = _update_sql(tuple(changes), db.vendor, rank_free)
    values = [*changes.values(), now]
    params = [_db_value(field, value, db) for field, value in zip(fields, values, strict=True)]
    params += [opportunity.pk, version]
    if rank_free:
        stage = changes.get("stage")
        stage_id = stage.pk if stage is not None else opportunity.stage_id
        params += [stage_id, changes["rank"], opportunity.pk]
    return sql, params


def execute_update(statement: tuple[str, list]) -> bool:
    """Run an `update_statement`; whether it changed the row."""
    with connection.cursor() as cursor:
        cursor.execute(*statement)
        return cursor.rowcount == 1
