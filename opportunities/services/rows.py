"""The statements of a deal's write, with their SQL built once per shape.

A drag writes three rows: the deal's guarded UPDATE, a history row and an event. Built
through the ORM (an update() and two bulk_create() calls) those statements cost more
Python than everything else in the write, and on SQLite that Python runs while the one
write lock is held, so every other writer waits for it. Here the SQL is made once per
table and set of columns from the models' fields, and each call only prepares its values
the way the ORM would (`get_db_prep_save`: dates, decimals, JSON per backend).
"""

from functools import cache, lru_cache

from django.db import connection

from opportunities.models import Opportunity


def _db_value(field, value):
    if field.remote_field is not None and hasattr(value, "_meta"):
        value = value.pk  # a related instance: its key
    return field.get_db_prep_save(value, connection)


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


def insert_rows(model, objects: list) -> None:
    """INSERT new rows of `model`, up to INSERT_BATCH per statement (ids are the
    database's and are not read back)."""
    fields = _insert_fields(model)
    with connection.cursor() as cursor:
        for start in range(0, len(objects), INSERT_BATCH):
            batch = objects[start : start + INSERT_BATCH]
            params = [
                _db_value(field, field.pre_save(obj, True)) for obj in batch for field in fields
            ]
            cursor.execute(_insert_sql(model, connection.vendor, len(batch)), params)


@cache
def _update_sql(attrs: tuple[str, ...], vendor: str) -> tuple[str, list]:
    quote = connection.ops.quote_name
    meta = Opportunity._meta
    fields = [meta.get_field(attr) for attr in attrs] + [meta.get_field("updated_at")]
    version = quote(meta.get_field("version").column)
    sets = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = (
        f"UPDATE {quote(meta.db_table)} SET {sets}, {version} = {version} + 1 "
        f"WHERE {quote(meta.pk.column)} = %s AND {version} = %s"
    )
    return sql, fields


def update_if_version(opportunity: Opportunity, version: int, changes: dict, now) -> bool:
    """UPDATE the deal's `changes` (attribute -> plain value), its updated_at, and bump its
    version, if the row still has `version`. Returns whether it did."""
    sql, fields = _update_sql(tuple(changes), connection.vendor)
    values = [*changes.values(), now]
    params = [_db_value(field, value) for field, value in zip(fields, values, strict=True)]
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, opportunity.pk, version])
        return cursor.rowcount == 1
