"""Ingest of behaviour data: the app catalogue, daily app usage and call records. Numbers as switches write them are
normalised; a number outside the operator never reaches the lake, a staging file or a report in clear."""

from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from tagging.lake import store
from tagging.models import IngestBatch, Subscriber
from tagging.services.ingest import ingest_file

from .conftest import ingest_city
from .test_ingest import assert_rejected_and_nothing_changed, known_msisdns, lake_files, write

pytestmark = pytest.mark.django_db

CATALOGUE = ("app_id,name,name_en,category\n"
             "douyin,抖音,Douyin,short_video\niqiyi,爱奇艺,iQIYI,video\nwzry,王者荣耀,Honor of Kings,game\n"
             "unicom_app,中国联通,China Unicom app,operator_cu\n")
APP_HEADER = "msisdn,date,app_id,sessions,seconds,bytes_up,bytes_down"
CALL_HEADER = "caller,callee,start_time,seconds,kind"
OFF_NET = ["13012345678", "18912345678", "075783001234"]  # China Unicom, China Telecom, a Foshan landline


@pytest.fixture
def subscribers(small_city):
    ingest_city(small_city, ["regions", "products", "tac_catalogue", "cells", "subscribers"])
    return known_msisdns(small_city, 4)


@pytest.fixture
def apps(subscribers, tmp_path):
    assert ingest_file(dataset="app_catalogue", path=write(tmp_path, "apps.csv", CATALOGUE)).status == "accepted"
    return subscribers


def lake_rows(dataset: str) -> list[dict]:
    batch = IngestBatch.objects.accepted().get(dataset=dataset)
    return pq.read_table(batch.lake_path).to_pylist()


def everything_written(data_dir: Path) -> bytes:
    """Every byte the ingest left under DATA_DIR (lake, reports, temporary files)."""
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


def test_app_usage_is_stored_by_subscriber_id(apps, tmp_path):
    a, b = apps[:2]
    text = f"{APP_HEADER}\n{a},2026-10-20,douyin,12,3600,1000,900000\n{b},2026-10-20,iqiyi,3,1800,500,700000\n"
    batch = ingest_file(dataset="app_usage_daily", path=write(tmp_path, "apps.csv", text))
    assert batch.status == "accepted", batch.errors
    rows = lake_rows("app_usage_daily")
    ids = dict(Subscriber.objects.filter(msisdn__in=[a, b]).values_list("msisdn", "id"))
    assert [(r["subscriber_id"], r["app_id"]) for r in rows] == sorted([(ids[a], "douyin"), (ids[b], "iqiyi")])
    assert "msisdn" not in rows[0]


def test_unknown_app_and_negative_bytes(apps, tmp_path, data_dir):
    a = apps[0]
    text = f"{APP_HEADER}\n{a},2026-10-20,douyin,12,3600,1000,900000\n{a},2026-10-20,nosuchapp,1,10,1,1\n{a},2026-10-21,douyin,1,10,-5,1\n"
    files = lake_files(data_dir)
    batch = ingest_file(dataset="app_usage_daily", path=write(tmp_path, "apps.csv", text))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=3, column="app_id", reason_part="unknown app: ingest it in app_catalogue first: nosuchapp")
    assert any(e["line"] == 4 and e["column"] == "bytes_up" and "below the minimum 0" in e["reason"] for e in batch.errors)


def test_catalogue_category_outside_the_list(subscribers, tmp_path, data_dir):
    files = lake_files(data_dir)
    batch = ingest_file(dataset="app_catalogue", path=write(tmp_path, "apps.csv", CATALOGUE + "x,某应用,Some app,gambling\n"))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=6, column="category", reason_part="must be one of video")


def test_gbk_catalogue_without_its_encoding_is_named(subscribers, tmp_path, data_dir):
    path = write(tmp_path, "apps.csv", CATALOGUE, encoding="gbk")
    files = lake_files(data_dir)
    batch = ingest_file(dataset="app_catalogue", path=path)
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=2, column="", reason_part="--encoding gbk")
    assert ingest_file(dataset="app_catalogue", path=path, encoding="gbk").status == "accepted"


def test_a_call_between_two_subscribers_is_kept_for_both_and_off_net_numbers_only_as_pseudonyms(subscribers, tmp_path, data_dir):
    a, b, c = subscribers[:3]
    text = "\n".join([
        CALL_HEADER,
        f"{a},{b},2026-10-20T09:00:00+08:00,120,voice",
        f"+86{a},+86 130-1234-5678,2026-10-20T10:00:00+08:00,60,voice",  # as switches write it: +86, spaces, dashes
        f"0086{OFF_NET[1]},{c},2026-10-20T11:00:00+08:00,0,sms",
        f"+86 757 83001234,{a},2026-10-20T12:00:00+08:00,30,voice",  # a landline written without its 0
        f"10010,{c},2026-10-20T13:00:00+08:00,45,voice",  # China Unicom's service number calls our subscriber
    ]) + "\n"
    batch = ingest_file(dataset="call_records", path=write(tmp_path, "calls.csv", text))
    assert batch.status == "accepted", batch.errors
    ids = dict(Subscriber.objects.filter(msisdn__in=[a, b, c]).values_list("msisdn", "id"))
    rows = lake_rows("call_records")
    seen = sorted(((r["subscriber_id"], r["direction"], r["peer_id"], r["peer_network"]) for r in rows),
                  key=lambda row: tuple(str(v) for v in row))
    assert seen == sorted([
        (ids[a], "out", ids[b], "cmcc"), (ids[b], "in", ids[a], "cmcc"),
        (ids[a], "out", None, "cu"), (ids[c], "in", None, "ct"), (ids[a], "in", None, "fixed"),
        (ids[c], "in", None, "service_cu"),
    ], key=lambda row: tuple(str(v) for v in row))
    assert [r["subscriber_id"] for r in rows] == sorted(r["subscriber_id"] for r in rows)
    # The same outside number always has the same pseudonym, and no outside number is anywhere in clear.
    written = everything_written(data_dir)
    for number in [*OFF_NET, "7578300123", "1234-5678", "10010"]:
        assert number.encode() not in written


def test_bad_call_records_are_named_by_line_and_column_never_by_number(subscribers, tmp_path, data_dir):
    a, b = subscribers[:2]
    text = "\n".join([
        CALL_HEADER,
        f"{a},{b},2026-10-20T09:00:00+08:00,120,voice",
        f"{a},1381234,2026-10-20T09:01:00+08:00,10,voice",  # line 3: a malformed callee
        f"{a},{a},2026-10-20T09:02:00+08:00,10,voice",  # line 4: a call to oneself
        f"{a},{b},2126-10-20T09:03:00+08:00,10,voice",  # line 5: a century ahead
        f"{OFF_NET[0]},{OFF_NET[1]},2026-10-20T09:04:00+08:00,10,voice",  # line 6: no subscriber of ours at either end
        f"{a},{OFF_NET[2]},2026-10-20T09:05:00+08:00,-3,voice",  # line 7: negative seconds
        f"{a},{b},2026-10-20T09:00:00+08:00,120,voice",  # line 8: line 2 again
        f"{a},{b},2026-10-20T09:06:00,10,voice",  # line 9: a time without its zone
    ]) + "\n"
    files = lake_files(data_dir)
    batch = ingest_file(dataset="call_records", path=write(tmp_path, "calls.csv", text))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=3, column="callee", reason_part="not a phone number")
    expected = {(4, "callee", "a call to oneself"), (5, "start_time", "out of range"),
                (6, "caller", "neither the caller nor the callee"), (7, "seconds", "below the minimum 0"),
                (8, "caller+callee+start_time+kind", "duplicate key: same as line 2"), (9, "start_time", "with a zone")}
    for line, column, reason in expected:
        assert any(e["line"] == line and e["column"] == column and reason in e["reason"] for e in batch.errors), (line, batch.errors)
    report = Path(batch.report_path).read_text(encoding="utf-8")
    for number in [a, b, *OFF_NET, "1381234"]:
        assert number not in report, "a reject report names the line and column, never the number"
        assert number not in str(batch.errors)


def test_call_records_already_ingested_are_refused(subscribers, tmp_path, data_dir):
    a, b = subscribers[:2]
    first = f"{CALL_HEADER}\n{a},{OFF_NET[0]},2026-10-20T09:00:00+08:00,120,voice\n"
    assert ingest_file(dataset="call_records", path=write(tmp_path, "calls1.csv", first)).status == "accepted"
    again = first + f"{a},{b},2026-10-20T10:00:00+08:00,5,voice\n"
    files = lake_files(data_dir)
    batch = ingest_file(dataset="call_records", path=write(tmp_path, "calls2.csv", again))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=2, column="caller+callee+start_time+kind",
                                        reason_part="already ingested in batch")
    assert duckdb.execute(f"SELECT count(*) FROM {store.current_sql('call_records')}").fetchall()[0][0] == 1
