"""Reads compiled once per process and run with new values.

Building and compiling a query through the ORM often costs several times running it
(the board's live poll, the drag's one read). A `Statement` is a values() query compiled
once for a shape, with stand-in integers where the values that change between calls go
(the pipeline, the cursor, the cards, the columns, the dragged card); `rows()` runs it
with the real ones. Callers key a statement by everything its SQL depends on besides
those values: the user (the visibility selector's SQL depends on who they are and on
whether they see every deal), their filters, how many ids.
"""

from dataclasses import dataclass
from functools import cache

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import QuerySet

# Stand-ins: no id is negative, and these fit a 32-bit integer column (the ORM turns a
# lookup beyond a column's range into a constant, which would leave no parameter).
STAND_IN = -2_000_000_000
# Cards or columns per statement are rounded up to one of these sizes (the last real id
# repeated: `IN` ignores duplicates), so a few statements serve every poll.
_SIZES = (1, 2, 4, 8, 16, 32, 64)
_STATEMENTS_MAX = 512
_statements: dict[tuple, "Statement | None"] = {}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def stand_ins(size: int, offset: int = 0) -> list[int]:
    return [STAND_IN - offset - index for index in range(size)]


def padded(values: list[int]) -> list[int]:
    size = next(size for size in _SIZES if size >= len(values))
    return [*values, *[values[-1]] * (size - len(values))]


@dataclass
class Statement:
    """A values() query compiled once: its SQL, its parameters with stand-ins, the names
    of its columns, and the converters that turn the database's values into Python ones
    (as the compiler applies them: Decimal, datetime, JSON)."""

    sql: str
    params: tuple
    names: list[str]
    converters: list[tuple[int, list, object]]

    @classmethod
    def compile(cls, queryset: QuerySet, stand_ins: list[int]) -> "Statement | None":
        """None for a query that matches nothing whatever the values (EmptyResultSet),
        that does not take every stand-in as a parameter, or whose columns are not its
        values() names: the ORM serves those."""
        compiler = queryset.query.get_compiler(connection=connection)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            return None
        if not set(stand_ins) <= {p for p in params if _is_int(p)}:
            return None
        query = queryset.query
        names = [*query.extra_select, *query.values_select, *query.annotation_select]
        if len(names) != compiler.col_count:
            return None
        fields = [column[0] for column in compiler.select[: compiler.col_count]]
        converters = [
            (position, functions, expression)
            for position, (functions, expression) in compiler.get_converters(fields).items()
        ]
        return cls(sql=sql, params=tuple(params), names=names, converters=converters)

    def rows(self, values: dict[int, int]) -> list[dict]:
        # A parameter keeps its type (psycopg's Int8 for a bigint column, say).
        params = [type(p)(values[p]) if _is_int(p) and p in values else p for p in self.params]
        db = connections[DEFAULT_DB_ALIAS]
        with db.cursor() as cursor:
            cursor.execute(self.sql, params)
            fetched = cursor.fetchall()
        rows = []
        for raw in fetched:
            row = list(raw[: len(self.names)])
            for position, functions, expression in self.converters:
                value = row[position]
                for convert in functions:
                    value = convert(value, expression, db)
                row[position] = value
            rows.append(dict(zip(self.names, row, strict=True)))
        return rows


@cache
def row_fields(model) -> tuple[str, ...]:
    """Every column of `model`, as a values() read names them."""
    return tuple(field.attname for field in model._meta.concrete_fields)


def instance_from(model, row: dict, prefix: str = "", fields=None):
    """A `model` instance as the ORM would load it, from a row's `prefix`-named values
    (all its columns, or `fields`)."""
    fields = fields or row_fields(model)
    return model.from_db(connection.alias, fields, [row[prefix + name] for name in fields])


def cached_statement(key: tuple, build) -> "Statement | None":
    key = (connection.alias, connection.vendor, *key)
    if key not in _statements:
        if len(_statements) >= _STATEMENTS_MAX:
            _statements.clear()  # rare (searches typed into the filters): start again
        _statements[key] = build()
    return _statements[key]


def fixed_statement(key: tuple, build) -> Statement:
    """A statement whose shape never changes: compiled it must be (tests run each)."""
    statement = cached_statement(key, build)
    if statement is None:
        raise RuntimeError(f"the {key[0]!r} read did not compile with stand-ins")
    return statement
