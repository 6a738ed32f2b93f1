"""The few pieces of DuckDB SQL text every reader of the lake builds: quoted names and values, file lists, and
a typed relation with no rows. Pure."""

from __future__ import annotations

from collections.abc import Iterable


def quote(name: str) -> str:
    """An identifier (column or table name) as SQL."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """A text value (a path, a code) as an SQL string literal."""
    return "'" + str(text).replace("'", "''") + "'"


def files_sql(paths: Iterable[str]) -> str:
    """A list of files for read_parquet."""
    return "[" + ", ".join(literal(p) for p in paths) + "]"


def parquet(path) -> str:
    """One Parquet file as a relation."""
    return f"read_parquet({literal(path)})"


def empty_relation(**columns: str) -> str:
    """A relation with these typed columns and no rows (name=DuckDB type), where a reader finds nothing in the
    lake yet: the query around it keeps its shape."""
    return "(SELECT " + ", ".join(f"NULL::{kind} AS {quote(name)}" for name, kind in columns.items()) + " WHERE false)"


def column_names(con, relation: str) -> set[str]:
    """The columns a relation has (a lake read, a stage's files): optional columns may be absent from older files."""
    return {d[0] for d in con.execute(f"SELECT * FROM {relation} LIMIT 0").description}
