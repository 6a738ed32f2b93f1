"""The feature table agrees with the raw files; the catalogue lists every feature and takes other apps' sources."""

from datetime import date, timedelta

import duckdb
import pytest
from rest_framework.test import APIClient

from tagging.expressions import Type
from tagging.models import Region, Snapshot, SnapshotRun, Subscriber, Subscription
from tagging.services.snapshots import start_snapshot_run
from tagging.stages import features, snapshot_dir
from tagging.stages.features import Feature, FeatureSource, trend_periods, usage_days

from .conftest import SMALL_CITY, ingest_city
from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)


def test_features_agree_with_the_raw_usage_and_subscriptions(small_city, run_to_end):
    ingest_city(small_city)
    # A 30-day window over a lake holding 14 days: monthly rates and the active share are per day of data.
    run = run_to_end(start_snapshot_run(as_of=SMALL_CITY.end_date, window_days=30, partition_size=500))
    assert run.status == SnapshotRun.Status.SUCCEEDED, run.error
    con = duckdb.connect()
    con.execute(f"CREATE VIEW f AS SELECT * FROM read_parquet('{snapshot_dir(run.id)}/features/*.parquet')")
    con.execute(f"CREATE VIEW u AS SELECT * FROM read_csv('{small_city}/usage_daily.csv', types={{'msisdn': 'VARCHAR'}})")
    ids = list(Subscriber.objects.values_list("id", "msisdn"))
    con.execute("CREATE TABLE subscriber_ids (subscriber_id BIGINT, msisdn VARCHAR)")
    con.executemany("INSERT INTO subscriber_ids VALUES (?, ?)", ids)
    mismatches = con.execute(f"""
        WITH raw AS (
            SELECT subscriber_id, count(*) AS active_days, count(*) / {SMALL_CITY.days} AS active_day_share,
                   sum(sms) * 30.0 / {SMALL_CITY.days} AS sms_30d,
                   sum(night_calls) / nullif(sum(voice_calls), 0) AS night_call_share,
                   sum(competitor_calls) / nullif(sum(voice_calls), 0) AS competitor_call_share,
                   count(*) FILTER (WHERE roaming_minutes > 0) AS roaming_days,
                   sum(charge_yuan) * 30.0 / {SMALL_CITY.days} AS arpu_30d
            FROM u JOIN subscriber_ids USING (msisdn) GROUP BY subscriber_id
        )
        SELECT count(*) FROM f LEFT JOIN raw r USING (subscriber_id)
        WHERE f.active_days <> coalesce(r.active_days, 0)
           OR abs(f.active_day_share - coalesce(r.active_day_share, 0)) > 1e-9
           OR abs(f.sms_30d - coalesce(r.sms_30d, 0)) > 1e-6
           OR abs(f.arpu_30d - coalesce(r.arpu_30d, 0)) > 1e-6
           OR f.roaming_days <> coalesce(r.roaming_days, 0)
           OR (f.night_call_share IS NULL) <> (r.night_call_share IS NULL)
           OR abs(f.night_call_share - r.night_call_share) > 1e-9
           OR (f.competitor_call_share IS NULL) <> (r.competitor_call_share IS NULL)
           OR abs(f.competitor_call_share - r.competitor_call_share) > 1e-9
    """).fetchone()[0]
    assert mismatches == 0
    assert con.execute("SELECT count(*) FROM f").fetchone()[0] == SMALL_CITY.subscribers

    # Products held on the as-of date, against the subscriptions in the database.
    held = Subscription.objects.active_on(SMALL_CITY.end_date)
    some = Subscriber.objects.order_by("id")[:50]
    for subscriber in some:
        row = con.execute("SELECT products_held, has_5g_plan, sms_package_fee, tenure_months FROM f WHERE subscriber_id = ?",
                          [subscriber.id]).fetchone()
        mine = held.filter(subscriber=subscriber)
        assert row[0] == mine.values("product").distinct().count()
        assert row[1] == mine.filter(product__code="5g_plan").exists()
        assert row[2] == float(sum(s.product.monthly_fee_yuan for s in mine.filter(product__category="sms")))
        months = (SMALL_CITY.end_date.year - subscriber.join_date.year) * 12 + SMALL_CITY.end_date.month - subscriber.join_date.month
        assert row[3] in (months, months - 1)  # whole months: one less when the day of the month is not reached
    # The simulated city has one window of usage, so trends compare its halves, and say so.
    assert run.definitions["trend"]["basis"] == "window halves"
    steady = con.execute("SELECT median(data_trend) FROM f").fetchone()[0]
    assert 0.8 < steady < 1.25  # most subscribers use about as much in both halves


def test_usage_days_are_the_days_of_the_window_the_data_cover():
    as_of = date(2026, 10, 24)
    assert usage_days(as_of=as_of, window_days=30, usage_from=date(2026, 10, 2), usage_to=date(2026, 10, 31)) == 23
    assert usage_days(as_of=as_of, window_days=30, usage_from=date(2026, 8, 1), usage_to=date(2026, 10, 20)) == 30 - 4
    assert usage_days(as_of=as_of, window_days=30, usage_from=date(2026, 8, 1), usage_to=date(2026, 10, 31)) == 30
    # Nothing known, or no usage inside the window at all: the window (every rate is 0 then anyway).
    assert usage_days(as_of=as_of, window_days=30, usage_from=None, usage_to=None) == 30
    assert usage_days(as_of=as_of, window_days=30, usage_from=date(2026, 10, 25), usage_to=date(2026, 10, 31)) == 30


def test_trend_periods():
    as_of = date(2026, 10, 31)
    assert trend_periods(as_of=as_of, window_days=30, usage_from=date(2026, 8, 1)) == {
        "basis": "previous window", "previous": ["2026-09-02", "2026-10-01"], "current": ["2026-10-02", "2026-10-31"]}
    assert trend_periods(as_of=as_of, window_days=30, usage_from=date(2026, 10, 2)) == {
        "basis": "window halves", "previous": ["2026-10-02", "2026-10-16"], "current": ["2026-10-17", "2026-10-31"]}
    # Usage starting inside the window: halves of what there is.
    assert trend_periods(as_of=as_of, window_days=30, usage_from=date(2026, 10, 18))["previous"] == ["2026-10-18", "2026-10-24"]
    # 23 days halve into 11 and 12 (trends compare daily rates); the current period ends with the data.
    assert trend_periods(as_of=date(2026, 10, 24), window_days=30, usage_from=date(2026, 10, 2), usage_to=date(2026, 10, 31)) == {
        "basis": "window halves", "previous": ["2026-10-02", "2026-10-12"], "current": ["2026-10-13", "2026-10-24"]}
    assert trend_periods(as_of=as_of, window_days=30, usage_from=date(2026, 8, 1), usage_to=date(2026, 10, 29))["current"] == [
        "2026-10-02", "2026-10-29"]


def test_trends_compare_daily_rates_over_halves_of_unequal_length(small_city, run_to_end):
    ingest_city(small_city)
    as_of = SMALL_CITY.end_date - timedelta(days=1)  # 13 days of usage: halves of 6 and 7 days
    run = run_to_end(start_snapshot_run(as_of=as_of, window_days=30, partition_size=600))
    assert run.status == SnapshotRun.Status.SUCCEEDED, run.error
    (previous_from, previous_to), (current_from, current_to) = run.definitions["trend"]["previous"], run.definitions["trend"]["current"]
    assert (previous_to, current_from, current_to) == (str(as_of - timedelta(days=7)), str(as_of - timedelta(days=6)), str(as_of))
    con = duckdb.connect()
    con.execute(f"CREATE VIEW f AS SELECT * FROM read_parquet('{snapshot_dir(run.id)}/features/*.parquet')")
    con.execute(f"CREATE VIEW u AS SELECT * FROM read_csv('{small_city}/usage_daily.csv', types={{'msisdn': 'VARCHAR'}})")
    con.execute("CREATE TABLE subscriber_ids (subscriber_id BIGINT, msisdn VARCHAR)")
    con.executemany("INSERT INTO subscriber_ids VALUES (?, ?)", list(Subscriber.objects.values_list("id", "msisdn")))
    compared, wrong = con.execute(f"""
        WITH raw AS (
            SELECT subscriber_id,
                   (sum(data_mb) FILTER (WHERE date >= DATE '{current_from}' AND date <= DATE '{as_of}') / 7)
                   / nullif(sum(data_mb) FILTER (WHERE date >= DATE '{previous_from}' AND date <= DATE '{previous_to}') / 6, 0) AS data_trend
            FROM u JOIN subscriber_ids USING (msisdn) GROUP BY subscriber_id
        )
        SELECT count(*), count(*) FILTER (WHERE abs(f.data_trend - r.data_trend) > 1e-9)
        FROM f JOIN raw r USING (subscriber_id) WHERE r.data_trend IS NOT NULL
    """).fetchone()
    assert compared > SMALL_CITY.subscribers / 2 and wrong == 0


def test_the_catalogue_describes_every_feature_and_takes_other_sources(small_city, monkeypatch):
    ingest_city(small_city, datasets=["regions", "products"])
    names = {f.name: f for f in features.catalogue()}
    assert {"sms_30d", "arpu_30d", "night_call_share", "competitor_call_share", "roaming_days", "charge_trend",
            "tenure_months", "age", "products_held", "has_5g_plan", "sms_package_fee"} <= set(names)
    assert all(f.label and f.description and f.source for f in names.values())
    assert names["has_5g_plan"].type == Type.BOOLEAN and names["sms_30d"].unit == "messages / 30 days"
    terminal = Feature("device_age_days", Type.NUMBER, "days", "终端使用天数", "Days since the handset was first seen", "imei_observations")
    monkeypatch.setitem(features.FEATURE_SOURCES, "terminals", FeatureSource("terminals", lambda: [terminal]))
    assert "device_age_days" in {f.name for f in features.catalogue()}

    api = APIClient()
    assert api.get("/api/v1/features/").status_code in (401, 403)
    api.force_authenticate(staff_user("sales", Region.objects.get(code="440604")))
    listed = api.get("/api/v1/features/").json()
    assert {"name": "device_age_days", "type": "number", "unit": "days", "label": "终端使用天数",
            "description": "Days since the handset was first seen", "source": "imei_observations"} in listed
    assert not Snapshot.objects.exists()
