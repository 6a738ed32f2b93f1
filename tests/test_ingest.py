"""Ingest: all rows or none, a clear report for every bad row, and the same file never twice."""

import shutil
from datetime import date
from pathlib import Path

import duckdb
import pytest

from tagging.lake import store
from tagging.models import IngestBatch, Product, Region, Subscriber, Subscription
from tagging.privacy import pseudonym
from tagging.services.ingest import ingest_file

from .conftest import ingest_city

pytestmark = pytest.mark.django_db

USAGE_HEADER = ("msisdn,date,voice_calls,voice_minutes,onnet_calls,offnet_calls,competitor_calls,sms,mms,data_mb,"
                "roaming_minutes,night_calls,charge_yuan")


def lake_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in (data_dir / "lake").rglob("*") if p.is_file() and p.name != ".ingest.lock")


def write(tmp_path: Path, name: str, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def city_references(small_city):
    """Regions, products, catalogue, cells and subscribers of the small city: what facts refer to."""
    ingest_city(small_city, ["regions", "products", "tac_catalogue", "cells", "subscribers"])
    return small_city


def known_msisdns(small_city: Path, n: int) -> list[str]:
    return [r[0] for r in duckdb.execute(f"SELECT msisdn FROM read_csv('{small_city}/subscribers.csv', all_varchar=true) LIMIT {n}").fetchall()]


def usage_rows(msisdns: list[str]) -> list[str]:
    return [f"{m},2026-10-2{i % 9},3,4.5,2,1,1,5,0,120.5,0,1,2.5" for i, m in enumerate(msisdns)]


def assert_rejected_and_nothing_changed(batch, data_dir, files_before, *, line, column, reason_part):
    assert batch.status == IngestBatch.Status.REJECTED
    assert lake_files(data_dir) == files_before, "a rejected file must not write to the lake"
    matching = [e for e in batch.errors if e["line"] == line and e["column"] == column and reason_part in e["reason"]]
    assert matching, f"no error at line {line}, column {column!r} containing {reason_part!r}: {batch.errors}"
    report = Path(batch.report_path).read_text(encoding="utf-8")
    assert f"{line},{column}" in report


def test_every_dataset_of_a_city_lands_in_the_lake(small_city, data_dir):
    ingest_city(small_city)
    counts = {b.dataset: b.rows_accepted for b in IngestBatch.objects.accepted()}
    expected = {name: len(Path(small_city / f"{name}.csv").read_text(encoding="utf-8").splitlines()) - 1 for name in counts}
    assert counts == expected
    for batch in IngestBatch.objects.accepted():
        # Call records keep a row per end that is a subscriber: a record between two of them is two rows.
        records = "count(*) FILTER (WHERE direction = 'out' OR peer_id IS NULL)" if batch.dataset == "call_records" else "count(*)"
        assert duckdb.execute(f"SELECT {records} FROM read_parquet('{batch.lake_path}')").fetchall()[0][0] == batch.rows_accepted
    assert Subscriber.objects.count() == expected["subscribers"]
    assert Subscription.objects.count() == expected["subscriptions"]
    assert Region.objects.get(code="440604").parent.code == "4406"


def test_facts_are_stored_by_dense_subscriber_id_sorted_and_without_msisdn(small_city, data_dir):
    ingest_city(small_city, ["regions", "products", "tac_catalogue", "cells", "subscribers", "usage_daily"])
    usage = IngestBatch.objects.get(dataset="usage_daily")
    columns = [r[0] for r in duckdb.execute(f"DESCRIBE SELECT * FROM read_parquet('{usage.lake_path}')").fetchall()]
    assert "msisdn" not in columns and columns[0] == "subscriber_id"
    ids = [r[0] for r in duckdb.execute(f"SELECT subscriber_id FROM read_parquet('{usage.lake_path}')").fetchall()]
    assert ids == sorted(ids)
    assert set(ids) <= set(Subscriber.objects.values_list("id", flat=True))
    assert usage.period_start.isoformat() == "2026-10-18" and usage.period_end.isoformat() == "2026-10-31"


def test_subscriber_ids_are_dense_and_pseudonyms_keyed(small_city, settings):
    ingest_city(small_city, ["regions", "subscribers"])
    ids = sorted(Subscriber.objects.values_list("id", flat=True))
    assert ids == list(range(1, len(ids) + 1))
    subscriber = Subscriber.objects.first()
    assert subscriber.pseudonym == pseudonym(subscriber.msisdn, key=settings.PSEUDONYM_KEY)


def test_the_same_file_twice_changes_nothing(small_city, data_dir):
    ingest_city(small_city, ["regions", "subscribers"])
    files = lake_files(data_dir)
    again = ingest_file(dataset="subscribers", path=small_city / "subscribers.csv")
    assert again.status == IngestBatch.Status.UNCHANGED
    assert again.same_as == IngestBatch.objects.get(dataset="subscribers", status="accepted")
    assert lake_files(data_dir) == files
    assert IngestBatch.objects.filter(dataset="subscribers", status="accepted").count() == 1


def test_a_later_subscribers_file_updates_and_keeps_ids(small_city, tmp_path):
    ingest_city(small_city, ["regions", "subscribers"])
    first, second = known_msisdns(small_city, 2)
    before = Subscriber.objects.get(msisdn=first)
    update = write(tmp_path, "subscribers-update.csv",
                   "msisdn,brand,plan,join_date,birth_year,gender,region_code,status,marketing_opt_out\n"
                   f"{first},全球通,5G畅享 188元,2020-01-01,1980,F,440606,active,true\n"
                   "13912345678,神州行,4G飞享 18元,2026-01-01,1990,M,440604,active,false\n")
    batch = ingest_file(dataset="subscribers", path=update)
    assert batch.status == IngestBatch.Status.ACCEPTED
    after = Subscriber.objects.get(msisdn=first)
    assert after.id == before.id and after.marketing_opt_out and after.region.code == "440606"
    assert Subscriber.objects.get(msisdn="13912345678").id == Subscriber.objects.count()
    assert Subscriber.objects.get(msisdn=second).id  # untouched subscribers stay
    current = store.current_sql("subscribers")
    assert duckdb.execute(f"SELECT count(*) FROM {current}").fetchall()[0][0] == Subscriber.objects.count()


# --- bad input: a clear error naming the line/column/reason; nothing written; the batch rejected ---


def test_wrong_type_on_line_5(city_references, tmp_path, data_dir):
    rows = usage_rows(known_msisdns(city_references, 6))
    rows[3] = rows[3].replace(",3,4.5,", ",three,4.5,")  # the 4th data row is line 5
    files = lake_files(data_dir)
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "usage.csv", "\n".join([USAGE_HEADER, *rows]) + "\n"))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=5, column="voice_calls", reason_part="not a whole number: three")
    assert batch.rows_rejected == 1


def test_missing_required_column(city_references, tmp_path, data_dir):
    header = USAGE_HEADER.replace(",sms,", ",")
    rows = [r.rsplit(",", 6)[0] + "," + ",".join(r.rsplit(",", 6)[2:]) for r in usage_rows(known_msisdns(city_references, 2))]
    files = lake_files(data_dir)
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "usage.csv", "\n".join([header, *rows]) + "\n"))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=1, column="sms", reason_part="missing required column: sms")


def test_unknown_region_code(city_references, tmp_path, data_dir):
    text = ("msisdn,brand,plan,join_date,birth_year,gender,region_code,status,marketing_opt_out\n"
            "13912345678,神州行,4G飞享 18元,2026-01-01,1990,M,440604,active,false\n"
            "13912345679,神州行,4G飞享 18元,2026-01-01,1990,M,999999,active,false\n")
    count = Subscriber.objects.count()
    files = lake_files(data_dir)
    batch = ingest_file(dataset="subscribers", path=write(tmp_path, "subs.csv", text))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=3, column="region_code", reason_part="unknown region code: 999999")
    assert Subscriber.objects.count() == count
    assert not Subscriber.objects.filter(msisdn="13912345678").exists(), "all or nothing: the good row is not kept either"


def test_duplicate_msisdn(city_references, tmp_path, data_dir):
    text = ("msisdn,brand,plan,join_date,birth_year,gender,region_code,status,marketing_opt_out\n"
            "13912345678,神州行,4G飞享 18元,2026-01-01,1990,M,440604,active,false\n"
            "13900000001,神州行,4G飞享 18元,2026-01-01,1990,M,440604,active,false\n"
            "13912345678,全球通,5G畅享 188元,2026-01-01,1990,M,440604,active,false\n")
    files = lake_files(data_dir)
    batch = ingest_file(dataset="subscribers", path=write(tmp_path, "subs.csv", text))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=4, column="msisdn", reason_part="duplicate key: same as line 2")


def test_gbk_file_is_named_and_can_be_ingested_with_its_encoding(city_references, tmp_path, data_dir):
    text = ("msisdn,brand,plan,join_date,birth_year,gender,region_code,status,marketing_opt_out\n"
            "13912345678,神州行,4G飞享 18元,2026-01-01,1990,M,440604,active,false\n")
    path = write(tmp_path, "subs-gbk.csv", text, encoding="gbk")
    files = lake_files(data_dir)
    batch = ingest_file(dataset="subscribers", path=path)
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=2, column="", reason_part="not UTF-8")
    assert "GBK" in batch.errors[0]["reason"]
    converted = ingest_file(dataset="subscribers", path=path, encoding="gbk")
    assert converted.status == IngestBatch.Status.ACCEPTED
    assert Subscriber.objects.get(msisdn="13912345678").brand == "神州行"


def test_empty_file(city_references, tmp_path, data_dir):
    files = lake_files(data_dir)
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "usage.csv", ""))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=1, column="", reason_part="the file is empty")


def test_header_only(city_references, tmp_path, data_dir):
    files = lake_files(data_dir)
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "usage.csv", USAGE_HEADER + "\n"))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=1, column="", reason_part="header but no data rows")


def test_unknown_subscriber_and_future_date(city_references, tmp_path, data_dir):
    rows = usage_rows(known_msisdns(city_references, 3))
    rows[1] = "13000000000" + rows[1][11:]
    rows[2] = rows[2].replace("2026-10-2", "2099-10-2")
    files = lake_files(data_dir)
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "usage.csv", "\n".join([USAGE_HEADER, *rows]) + "\n"))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=3, column="msisdn", reason_part="unknown subscriber")
    assert any(e["line"] == 4 and e["column"] == "date" and "future" in e["reason"] for e in batch.errors)


def test_inconsistent_counts_and_negative_values(city_references, tmp_path, data_dir):
    rows = usage_rows(known_msisdns(city_references, 3))
    rows[0] = rows[0].replace(",3,4.5,2,1,1,", ",3,4.5,3,2,1,")  # on-net + off-net > voice calls
    rows[2] = rows[2].replace(",120.5,", ",-5,")
    files = lake_files(data_dir)
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "usage.csv", "\n".join([USAGE_HEADER, *rows]) + "\n"))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=2, column="onnet_calls", reason_part="exceed voice calls")
    assert any(e["line"] == 4 and e["column"] == "data_mb" and "below the minimum 0" in e["reason"] for e in batch.errors)


def test_wrong_number_of_fields(city_references, tmp_path, data_dir):
    rows = usage_rows(known_msisdns(city_references, 4))
    rows[1] = ",".join(rows[1].split(",")[:5])
    files = lake_files(data_dir)
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "usage.csv", "\n".join([USAGE_HEADER, *rows]) + "\n"))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=3, column="", reason_part="wrong number of fields")


def test_stay_at_an_unknown_cell_and_a_time_without_zone(city_references, tmp_path, data_dir):
    msisdn = known_msisdns(city_references, 1)[0]
    cell = duckdb.execute(f"SELECT radio||'-'||mcc||'-'||net||'-'||area||'-'||cell FROM read_csv('{city_references}/cells.csv') LIMIT 1").fetchall()[0][0]
    text = ("msisdn,cell_key,start_time,end_time\n"
            f"{msisdn},{cell},2026-10-20T22:00:00+08:00,1792591200\n"
            f"{msisdn},LTE-460-0-1-1,1792591300,1792600000\n"
            f"{msisdn},{cell},2026-10-22T08:00:00,2026-10-22T09:00:00+08:00\n")
    files = lake_files(data_dir)
    batch = ingest_file(dataset="stays", path=write(tmp_path, "stays.csv", text))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=3, column="cell_key", reason_part="unknown cell")
    assert "LTE-460-0-1-1" in batch.errors[0]["reason"]
    assert any(e["line"] == 4 and e["column"] == "start_time" and "zone" in e["reason"] for e in batch.errors)


def test_unknown_product_and_bad_imei(city_references, tmp_path, data_dir):
    msisdn = known_msisdns(city_references, 1)[0]
    files = lake_files(data_dir)
    subs = ingest_file(dataset="subscriptions", path=write(
        tmp_path, "subs.csv", f"msisdn,product_code,start_date,end_date\n{msisdn},no_such_product,2025-01-01,\n"))
    assert_rejected_and_nothing_changed(subs, data_dir, files, line=2, column="product_code", reason_part="unknown product code")
    imei = ingest_file(dataset="imei_observations", path=write(
        tmp_path, "imei.csv", f"msisdn,date,imei\n{msisdn},2026-10-20,86123456789012\n{msisdn},2026-10-21,8612345678901X\n"))
    assert_rejected_and_nothing_changed(imei, data_dir, files, line=2, column="imei", reason_part="must be 15 digits")
    assert any(e["line"] == 3 and e["column"] == "imei" for e in imei.errors)


def test_parquet_files_and_extra_columns_are_accepted(city_references, tmp_path):
    rows = usage_rows(known_msisdns(city_references, 3))
    csv_path = write(tmp_path, "usage.csv", "\n".join([USAGE_HEADER + ",note", *(r + ",x" for r in rows)]) + "\n")
    parquet = tmp_path / "usage.parquet"
    duckdb.execute(f"COPY (SELECT * FROM read_csv('{csv_path}')) TO '{parquet}' (FORMAT parquet)")
    batch = ingest_file(dataset="usage_daily", path=parquet)
    assert batch.status == IngestBatch.Status.ACCEPTED, batch.errors
    assert batch.rows_accepted == 3


def test_opencellid_files_without_a_header(tmp_path):
    text = ("LTE,460,0,9500,25600000,0,113.1,23.0,500,10,1,1600000000,1700000000,0\n"
            "NR,460,0,9500,409600001,0,113.2,23.1,500,10,1,1600000000,1700000000,0\n")
    batch = ingest_file(dataset="cells", path=write(tmp_path, "460.csv", text))
    assert batch.status == IngestBatch.Status.ACCEPTED, batch.errors
    keys = duckdb.execute(f"SELECT cell_key FROM read_parquet('{batch.lake_path}') ORDER BY 1").fetchall()
    assert keys == [("LTE-460-0-9500-25600000",), ("NR-460-0-9500-409600001",)]


def test_a_failed_database_write_leaves_no_lake_file(small_city, data_dir, monkeypatch):
    ingest_city(small_city, ["regions"])
    files = lake_files(data_dir)

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(Product.objects, "bulk_create", broken)
    with pytest.raises(RuntimeError):
        ingest_file(dataset="products", path=small_city / "products.csv")
    assert lake_files(data_dir) == files
    assert IngestBatch.objects.get(dataset="products").status == IngestBatch.Status.REJECTED
    assert not Product.objects.exists()


def test_a_folder_missing_a_dataset_is_refused_before_anything_is_ingested(small_city, tmp_path):
    from django.core.management import CommandError, call_command

    for name in ["regions.csv", "products.csv"]:  # the rest of the city is missing
        shutil.copy(small_city / name, tmp_path / name)
    lake = set(store.dataset_dir("regions").glob("*"))  # services mode shares one lake across the session
    with pytest.raises(CommandError, match=r"has no tac_catalogue\.csv or tac_catalogue\.parquet"):
        call_command("ingest_city", str(tmp_path))
    assert not IngestBatch.objects.exists() and not Region.objects.exists()
    assert set(store.dataset_dir("regions").glob("*")) == lake


def test_ingest_command_exit_status_and_report(city_references, tmp_path, capsys):
    from django.core.management import CommandError, call_command

    bad = write(tmp_path, "usage.csv", USAGE_HEADER + "\n13800000000,2026-10-20,1\n")
    with pytest.raises(CommandError, match="rejected"):
        call_command("ingest", "usage_daily", str(bad))
    out = capsys.readouterr().out
    assert "line 2" in out and "wrong number of fields" in out
    good = shutil.copy(city_references / "usage_daily.csv", tmp_path / "good.csv")
    call_command("ingest", "usage_daily", str(good))
    assert "已接收" in capsys.readouterr().out  # commands speak the default language (zh-hans)


def test_a_day_already_in_the_lake_is_refused_naming_the_batch(city_references, tmp_path, data_dir):
    msisdns = known_msisdns(city_references, 3)
    first = ingest_file(dataset="usage_daily", path=write(tmp_path, "day1.csv", "\n".join([USAGE_HEADER, *usage_rows(msisdns[:2])]) + "\n"))
    assert first.status == IngestBatch.Status.ACCEPTED
    files = lake_files(data_dir)
    again = "\n".join([USAGE_HEADER, *usage_rows(msisdns)]) + "\n"  # the first two rows were delivered before
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "day1-resent.csv", again))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=2, column="msisdn+date", reason_part=f"already ingested in batch #{first.id}")
    assert batch.rows_rejected == 2


def test_missing_and_too_large_numbers(city_references, tmp_path, data_dir):
    rows = usage_rows(known_msisdns(city_references, 3))
    rows[0] = rows[0].replace(",3,4.5,", ",,4.5,")  # voice_calls left empty
    rows[2] = rows[2].replace(",5,0,120.5,", ",100001,0,120.5,")  # more SMS in a day than plausible
    files = lake_files(data_dir)
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "usage.csv", "\n".join([USAGE_HEADER, *rows]) + "\n"))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=2, column="voice_calls", reason_part="missing value")
    assert any(e["line"] == 4 and e["column"] == "sms" and "above the maximum 100000" in e["reason"] for e in batch.errors)


def test_every_attempt_records_the_files_checksum(city_references, tmp_path):
    import hashlib

    bad = write(tmp_path, "usage.csv", USAGE_HEADER + "\n")
    batch = ingest_file(dataset="usage_daily", path=bad)
    assert batch.checksum == hashlib.sha256(bad.read_bytes()).hexdigest()
    good = IngestBatch.objects.get(dataset="subscribers")
    assert good.checksum == hashlib.sha256((city_references / "subscribers.csv").read_bytes()).hexdigest()


def test_malformed_and_missing_numbers_in_a_fact_file(city_references, tmp_path, data_dir):
    rows = usage_rows(known_msisdns(city_references, 3))
    rows[0] = "1380000abcd" + rows[0][11:]
    rows[2] = rows[2][11:]  # no number at all
    files = lake_files(data_dir)
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "usage.csv", "\n".join([USAGE_HEADER, *rows]) + "\n"))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=2, column="msisdn", reason_part="not an 11-digit mobile number: *******abcd")  # masked: a part of a number
    assert any(e["line"] == 4 and e["column"] == "msisdn" and e["reason"] == "missing value" for e in batch.errors)


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_numbers_that_are_not_finite(city_references, tmp_path, data_dir, value):
    rows = usage_rows(known_msisdns(city_references, 3))
    rows[1] = rows[1].replace(",120.5,", f",{value},")
    files = lake_files(data_dir)
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "usage.csv", "\n".join([USAGE_HEADER, *rows]) + "\n"))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=3, column="data_mb", reason_part=value)


def test_rows_the_fast_parser_refuses_but_the_checks_accept_are_not_lost(city_references, tmp_path, monkeypatch):
    from tagging.lake import staging

    real = staging.csv_column_types

    def stricter(dataset, names, *, native):  # a parser stricter than the checks: it refuses every sms value
        types = real(dataset, names, native=native)
        return {**types, "sms": "DATE"} if native else types

    monkeypatch.setattr(staging, "csv_column_types", stricter)
    rows = usage_rows(known_msisdns(city_references, 4))
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "usage.csv", "\n".join([USAGE_HEADER, *rows]) + "\n"))
    assert batch.status == IngestBatch.Status.ACCEPTED, batch.errors
    assert batch.rows_accepted == 4
    assert duckdb.execute(f"SELECT count(*), sum(sms) FROM read_parquet('{batch.lake_path}')").fetchall()[0] == (4, 20)


def test_dates_read_the_same_on_both_paths(city_references, tmp_path, data_dir):
    rows = usage_rows(known_msisdns(city_references, 3))
    rows[0] = rows[0].replace("2026-10-20", "2026-10-1")  # unpadded, still a date
    rows[1] = rows[1].replace("2026-10-21", "20261021")
    files = lake_files(data_dir)
    batch = ingest_file(dataset="usage_daily", path=write(tmp_path, "usage.csv", "\n".join([USAGE_HEADER, *rows]) + "\n"))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=3, column="date", reason_part="not a date")
    assert [e["line"] for e in batch.errors] == [3]


def test_cells_out_of_range_or_twice_and_stays_ending_before_they_start(city_references, tmp_path, data_dir):
    files = lake_files(data_dir)
    cells = ingest_file(dataset="cells", path=write(tmp_path, "460.csv", (
        "radio,mcc,net,area,cell,unit,lon,lat,range,samples,changeable,created,updated,averageSignal\n"
        "LTE,460,0,9501,1,0,113.1,23.0,500,10,1,1600000000,1700000000,0\n"
        "LTE,460,0,9501,2,0,113.1,95.0,500,10,1,1600000000,1700000000,0\n"
        "LTE,460,0,9501,3,0,213.1,23.0,500,10,1,1600000000,1700000000,0\n"
        "LTE,460,0,9501,1,0,113.2,23.1,500,10,1,1600000000,1700000000,0\n")))
    assert_rejected_and_nothing_changed(cells, data_dir, files, line=3, column="lat", reason_part="")
    assert any(e["line"] == 4 and e["column"] == "lon" for e in cells.errors), cells.errors
    assert any(e["line"] == 5 and "duplicate key: same as line 2" in e["reason"] for e in cells.errors), cells.errors
    msisdn = known_msisdns(city_references, 1)[0]
    cell = duckdb.execute(f"SELECT radio||'-'||mcc||'-'||net||'-'||area||'-'||cell FROM read_csv('{city_references}/cells.csv') LIMIT 1").fetchall()[0][0]
    stays = ingest_file(dataset="stays", path=write(tmp_path, "stays.csv", (
        "msisdn,cell_key,start_time,end_time\n"
        f"{msisdn},{cell},2026-10-20T22:00:00+08:00,2026-10-21T07:00:00+08:00\n"
        f"{msisdn},{cell},2026-10-21T09:00:00+08:00,2026-10-21T08:00:00+08:00\n")))
    assert_rejected_and_nothing_changed(stays, data_dir, files, line=3, column="end_time", reason_part="end time before start time")


def test_a_later_subscriptions_file_ends_a_subscription_and_the_lake_keeps_one_row_per_key(small_city, tmp_path):
    ingest_city(small_city, ["regions", "products", "subscribers", "subscriptions"])
    msisdn, product, start = duckdb.execute(
        f"SELECT msisdn::VARCHAR, product_code, start_date FROM read_csv('{small_city}/subscriptions.csv') "
        f"WHERE end_date IS NULL LIMIT 1").fetchone()
    batch = ingest_file(dataset="subscriptions", path=write(
        tmp_path, "ended.csv", f"msisdn,product_code,start_date,end_date\n{msisdn},{product},{start},2026-10-30\n"))
    assert batch.status == IngestBatch.Status.ACCEPTED, batch.errors
    rows = duckdb.execute(
        f"SELECT p.end_date FROM {store.current_sql('subscriptions')} p JOIN {store.current_sql('subscribers')} s "
        f"USING (subscriber_id) WHERE s.msisdn::VARCHAR = '{msisdn}' AND p.product_code = '{product}' "
        f"AND p.start_date = DATE '{start}'").fetchall()
    assert rows == [(date(2026, 10, 30),)]
