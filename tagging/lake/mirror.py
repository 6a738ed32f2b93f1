"""The database mirror: the datasets the web pages and admin need (regions, products, subscribers, subscriptions)
upserted into their tables, inside the transaction that accepts the batch. Each writer is registered under the
table its dataset's spec names (`Dataset.mirror`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa
from django.db import connection

from ..models import Product, Region, Subscriber, Subscription
from .schemas import Dataset
from .sql import parquet


def mirror_rows(con: duckdb.DuckDBPyConnection, spec: Dataset, staging: Path, batch_id: int) -> None:
    """The batch's rows into the dataset's mirror table, if it has one (inside the accepting transaction)."""
    if spec.mirror:
        WRITERS[spec.mirror](con, parquet(staging), batch_id)


def _regions(con: duckdb.DuckDBPyConnection, source: str, batch_id: int) -> None:
    order = "CASE level WHEN 'province' THEN 0 WHEN 'city' THEN 1 ELSE 2 END"
    for code, name, name_en, level, parent_code in con.execute(
        f"SELECT code, name, coalesce(name_en, ''), level, parent_code FROM {source} ORDER BY {order}, code"
    ).fetchall():  # a handful of regions, parents first so each child finds its parent
        region, _ = Region.objects.get_or_create(code=code, defaults={"name": name, "level": level})
        region.name, region.name_en, region.level = name, name_en, level
        region.parent = Region.objects.get(code=parent_code) if parent_code else None
        region.save(update_fields=["name", "name_en", "level", "parent", "path"])


def _products(con: duckdb.DuckDBPyConnection, source: str, batch_id: int) -> None:
    rows = con.execute(f"SELECT code, name, coalesce(name_en, ''), category, monthly_fee_yuan FROM {source}").fetchall()
    Product.objects.bulk_create(
        [Product(code=r[0], name=r[1], name_en=r[2], category=r[3], monthly_fee_yuan=round(r[4], 2)) for r in rows],
        update_conflicts=True, unique_fields=["code"], update_fields=["name", "name_en", "category", "monthly_fee_yuan"],
    )


def _subscribers(con: duckdb.DuckDBPyConnection, source: str, batch_id: int) -> None:
    _upsert(con, f"""SELECT s.subscriber_id, s.msisdn, s.pseudonym, s.brand, s.plan, s.join_date, s.birth_year,
                            coalesce(s.gender, 'U'), r.id, s.status, s.status_date, s.marketing_opt_out, {batch_id}
                     FROM {source} s JOIN region_ids r ON r.code = s.region_code""",
            Subscriber, ["id", "msisdn", "pseudonym", "brand", "plan", "join_date", "birth_year", "gender", "region",
                         "status", "status_date", "marketing_opt_out", "batch"], key=["id"],
            region_ids=_codes_to_ids(Region.objects.values_list("code", "id")))


def _subscriptions(con: duckdb.DuckDBPyConnection, source: str, batch_id: int) -> None:
    _upsert(con, f"""SELECT s.subscriber_id, p.id, s.start_date, s.end_date
                     FROM {source} s JOIN product_ids p ON p.code = s.product_code""",
            Subscription, ["subscriber", "product", "start_date", "end_date"], key=["subscriber", "product", "start_date"],
            product_ids=_codes_to_ids(Product.objects.values_list("code", "id")))


# Dataset.mirror -> its writer (source: the staged batch as a relation).
WRITERS: dict[str, Callable[[duckdb.DuckDBPyConnection, str, int], None]] = {
    "tagging.Region": _regions, "tagging.Product": _products, "tagging.Subscriber": _subscribers,
    "tagging.Subscription": _subscriptions,
}


def _codes_to_ids(pairs) -> pa.Table:
    codes, ids = zip(*pairs) if pairs else ((), ())
    return pa.table({"code": pa.array(codes, pa.string()), "id": pa.array(ids, pa.int64())})


def _upsert(con: duckdb.DuckDBPyConnection, select: str, model, fields: list[str], *, key: list[str], **tables: pa.Table) -> None:
    """The rows of a DuckDB query inserted into a model's table, or updated where the key exists, in plain
    SQL: PostgreSQL copies them into a scratch table first, SQLite takes multi-row statements. The ORM's
    bulk_create built a model instance and compiled each of its values one at a time (a million
    subscribers: 222 s to ingest on SQLite, 63 s now), and psycopg's client-side binding parses every
    statement again (235 s for multi-row statements on PostgreSQL, 102 s copied). The file was validated
    before, and a reference check has made every key valid.
    `tables` are Arrow tables the query joins by name."""
    quote = connection.ops.quote_name
    table = quote(model._meta.db_table)
    columns = [quote(model._meta.get_field(name).column) for name in fields]
    keys = {quote(model._meta.get_field(name).column) for name in key}
    listed = ", ".join(columns)
    on_conflict = (f"ON CONFLICT ({', '.join(c for c in columns if c in keys)}) DO UPDATE SET "
                   + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns if c not in keys))
    duck = con.cursor()  # its own result and registrations, beside whatever the ingest's connection holds
    try:
        for name, arrow in tables.items():
            duck.register(name, arrow)
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                scratch = quote(f"upsert_{model._meta.db_table}")
                cursor.execute(f"CREATE TEMP TABLE {scratch} AS SELECT {listed} FROM {table} WITH NO DATA")
                with cursor.cursor.copy(f"COPY {scratch} ({listed}) FROM STDIN") as copy:
                    for chunk in _chunks(duck, select):
                        for line in chunk:
                            copy.write_row(line)
                cursor.execute(f"INSERT INTO {table} ({listed}) SELECT {listed} FROM {scratch} {on_conflict}")
                cursor.execute(f"DROP TABLE {scratch}")
                return
            # SQLite binds at most 32,766 values in one statement.
            per_statement = max(1, min(UPSERT_ROWS, 32_000 // len(columns)))
            row = "(" + ", ".join(["%s"] * len(columns)) + ")"
            for chunk in _chunks(duck, select, size=per_statement):
                cursor.execute(f"INSERT INTO {table} ({listed}) VALUES {', '.join([row] * len(chunk))} {on_conflict}",
                               [value for line in chunk for value in line])
    finally:
        duck.close()


UPSERT_ROWS = 1000


def _chunks(con: duckdb.DuckDBPyConnection, sql: str, size: int = 20_000):
    cursor = con.execute(sql)
    while rows := cursor.fetchmany(size):
        yield rows


