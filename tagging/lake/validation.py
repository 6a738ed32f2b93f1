"""Compile a dataset's schema into one DuckDB SELECT that types every value and lists every row's errors.

Pure: builds SQL text only. One pass over the file types every value and flags every bad row; a
rejected file gets a second, detailed pass that names each problem.
"""

from __future__ import annotations

from ..numbering import network_sql, normalised_sql
from .schemas import Column, Dataset
from .sql import literal, quote

SEPARATOR = "\x1f"
_ZONE = r"(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_BOOL_TRUE = "('true', 't', '1', 'yes', 'y')"
_BOOL_FALSE = "('false', 'f', '0', 'no', 'n')"


def _raw(column: Column) -> str:
    return quote("_raw_" + column.name)


def typed_expression(column: Column) -> str:
    """SQL turning the trimmed text value into the column's type (NULL where it does not parse)."""
    v = _raw(column)
    match column.type:
        case "msisdn":
            # Accept the country code (+86 / 86) in front, as some exports write it.
            return f"CASE WHEN length({v}) > 11 AND (starts_with({v}, '+86') OR starts_with({v}, '86')) THEN right({v}, 11) ELSE {v} END"
        case "phone":
            return normalised_sql(v)
        case "int":
            return f"TRY_CAST({v} AS BIGINT)"
        case "decimal":
            return f"CASE WHEN isfinite(TRY_CAST({v} AS DOUBLE)) THEN TRY_CAST({v} AS DOUBLE) END"
        case "date":  # as the CSV parser reads dates on the fast path, so both paths agree
            return f"TRY_CAST({v} AS DATE)"
        case "timestamp":
            return (
                f"CASE WHEN regexp_full_match({v}, '-?[0-9]{{1,11}}') THEN to_timestamp(TRY_CAST({v} AS BIGINT)) "
                f"WHEN regexp_matches({v}, '{_ZONE}') THEN TRY_CAST({v} AS TIMESTAMPTZ) END"
            )
        case "bool":
            return f"CASE WHEN lower({v}) IN {_BOOL_TRUE} THEN true WHEN lower({v}) IN {_BOOL_FALSE} THEN false END"
        case "enum" | "digits" | "text":
            return v
    raise ValueError(f"unknown column type {column.type!r}")


def _type_error(column: Column) -> tuple[str, str] | None:
    """(condition over raw and typed, reason) for a value present but not of the column's type."""
    v, t = _raw(column), quote(column.name)
    match column.type:
        case "msisdn":
            return f"NOT regexp_full_match({t}, '1[3-9][0-9]{{9}}')", "not an 11-digit mobile number: "
        case "phone":  # the reason never repeats the number: call records name people outside the operator
            return (f"{network_sql(t)} IS NULL",
                    "not a phone number (a mobile number, a landline with its area code, a service or an international number)")
        case "int":
            return f"{t} IS NULL", "not a whole number: "
        case "decimal":
            return f"{t} IS NULL", "not a number: "
        case "date":
            return f"{t} IS NULL", "not a date (YYYY-MM-DD): "
        case "timestamp":
            return f"{t} IS NULL", "not an ISO 8601 time with a zone, nor Unix seconds: "
        case "bool":
            return f"{t} IS NULL", "not true/false: "
        case "enum":
            choices = ", ".join(literal(c) for c in column.choices)
            return f"{t} NOT IN ({choices})", f"must be one of {', '.join(column.choices)}, not: "
        case "digits":
            if column.length:
                return f"NOT regexp_full_match({v}, '[0-9]{{{column.length}}}')", f"must be {column.length} digits, not: "
            return f"NOT regexp_full_match({v}, '[0-9]+')", "must be digits only, not: "
        case "text":
            if column.length:
                return f"length({v}) > {column.length}", f"longer than {column.length} characters: "
            return None
    return None


# Types the CSV parser itself can read: on the fast path it types these columns as it reads (a bad
# value becomes a parser reject with its line), exactly as a bare CSV-to-Parquet copy would.
NATIVE_TYPES = {"int": "BIGINT", "decimal": "DOUBLE", "date": "DATE"}


def csv_column_types(dataset: Dataset, names: list[str], *, native: bool) -> dict[str, str]:
    """The `columns` map for read_csv: native types on the fast path, text for everything else."""
    types = {c.name: NATIVE_TYPES[c.type] for c in dataset.columns if native and c.type in NATIVE_TYPES}
    return {name: types.get(name, "VARCHAR") for name in names}


def checked_by_statistics(dataset: Dataset, *, native: bool) -> list[Column]:
    """Columns whose missing values and range the fast path checks from the written Parquet file's
    column statistics (null count, min, max) instead of row by row."""
    return [c for c in dataset.columns if native and c.type in NATIVE_TYPES]


def _problems(dataset: Dataset, *, native: bool, detailed: bool) -> list[tuple[str, str]]:
    """(condition, message expression) for every way a row can be wrong."""
    problems = []
    by_statistics = set() if detailed else {c.name for c in checked_by_statistics(dataset, native=native)}
    for column in dataset.columns:
        v, t = _raw(column), quote(column.name)
        label = literal(column.name + SEPARATOR)
        if not detailed and column.type == "msisdn" and dataset.keyed_by_subscriber:
            continue  # a missing or malformed number matches no known subscriber: the reference check sees it
        if column.name in by_statistics:
            continue
        if column.required:
            problems.append((f"{v} IS NULL", f"{label} || 'missing value'"))
        if native and column.type in NATIVE_TYPES:
            if column.type == "decimal":  # the parser reads inf and nan as numbers
                problems.append((f"NOT isfinite({t})", f"{label} || 'not a finite number: ' || {v}"))
        else:
            type_error = _type_error(column)
            if type_error:
                condition, reason = type_error
                shown = f" || {v}" if reason.endswith(": ") else ""
                problems.append((f"{v} IS NOT NULL AND ({condition})", f"{label} || {literal(reason)}{shown}"))
        if column.minimum is not None:
            problems.append((f"{t} < {column.minimum}", f"{label} || 'below the minimum {column.minimum:g}: ' || {v}"))
        if column.maximum is not None:
            problems.append((f"{t} > {column.maximum}", f"{label} || 'above the maximum {column.maximum:g}: ' || {v}"))
    for check in dataset.checks:
        problems.append((f"coalesce({check.sql}, false)", literal(check.column + SEPARATOR + check.reason)))
    return problems


def staging_sql(dataset: Dataset, source: str, *, detailed: bool = False, native: bool = False) -> str:
    """SELECT over `source` yielding the typed columns and either `_bad` (is anything wrong with the
    row: cheap, the path every good file takes) or, when detailed, `_errors` (every problem, as
    'column<US>reason' strings, for the report of a rejected file).

    With native, the source already typed int, decimal and date columns (see csv_column_types), and
    the fast path leaves their missing-value and range checks to checked_by_statistics.
    Row checks refer to typed columns by name, so typing happens in an inner SELECT; DuckDB still
    reads the file once.
    """
    problems = _problems(dataset, native=native, detailed=detailed)
    if detailed:
        items = ", ".join(f"CASE WHEN {condition} THEN {message} END" for condition, message in problems)
        verdict = f"list_filter([{items}], lambda x: x IS NOT NULL) AS _errors"
    else:
        verdict = f"coalesce({' OR '.join(f'({condition})' for condition, _ in problems)}, false) AS _bad"

    def passes_through(column: Column) -> bool:
        return native and column.type in NATIVE_TYPES

    raw = ", ".join(
        f"{quote(c.name)} AS {_raw(c)}" if passes_through(c)
        else f"NULLIF(trim(CAST({quote(c.name)} AS VARCHAR)), '') AS {_raw(c)}"
        for c in dataset.columns
    )
    typed = ", ".join(
        f"{_raw(c) if passes_through(c) else typed_expression(c)} AS {quote(c.name)}" for c in dataset.columns
    )
    raws = ", ".join(_raw(c) for c in dataset.columns)
    names = ", ".join(quote(c.name) for c in dataset.columns)
    return (
        f"SELECT {names}, {verdict} FROM ("
        f"SELECT {raws}, {typed} FROM (SELECT {raw} FROM {source}))"
    )
