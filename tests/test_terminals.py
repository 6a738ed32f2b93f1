"""The terminal snapshot library: handset chains, changes and knock-offs against the simulator's truth."""

from datetime import date, timedelta

import duckdb
import numpy as np
import pytest

from simulation.handsets import luhn_digit
from tagging.lake import store
from tagging.models import IngestBatch, TagSnapshot
from tagging.services.ingest import ingest_file
from tagging.services.snapshots import start_snapshot_run
from tagging.services.tags import install_starting_catalogue
from tagging.stages import snapshot_dir
from tagging.stages.features import catalogue
from tagging.stages.terminals import DEVICES, history_start, luhn_ok_sql

from .conftest import SMALL_CITY, ingest_city
from .test_ingest import assert_rejected_and_nothing_changed, known_msisdns, lake_files, write

pytestmark = pytest.mark.django_db(transaction=True)
AS_OF = SMALL_CITY.end_date


@pytest.fixture
def terminal_run(small_city, run_to_end):
    ingest_city(small_city)
    install_starting_catalogue()
    return run_to_end(start_snapshot_run(as_of=AS_OF, window_days=SMALL_CITY.days, partition_size=500))


def _devices(run) -> str:
    """Every detected handset, keyed by MSISDN (the truth's key)."""
    files = store.files_sql(sorted(str(p) for p in (snapshot_dir(run.id) / DEVICES).glob("part=*.parquet")))
    return (f"(SELECT s.msisdn::VARCHAR AS msisdn, d.* FROM read_parquet({files}) d "
            f"JOIN {store.current_sql('subscribers')} s USING (subscriber_id))")


def test_handset_changes_match_the_planted_ones(terminal_run, small_city):
    devices = _devices(terminal_run)
    start = history_start(AS_OF)
    # A change can be seen when both handsets fall inside the history a run reads.
    planted = f"""(SELECT msisdn, imei, first_date FROM (
                      SELECT *, lag(last_date) OVER (PARTITION BY msisdn ORDER BY first_date) AS before_last
                      FROM read_parquet('{small_city}/truth/handsets.parquet'))
                  WHERE before_last >= DATE '{start}')"""
    detected = f"(SELECT msisdn, imei, first_seen FROM {devices} WHERE position > 1)"
    con = duckdb.connect()
    found, wanted = (con.sql(f"SELECT count(*) FROM {q}").fetchall()[0][0] for q in (detected, planted))
    matched = con.sql(f"SELECT count(*) FROM {detected} d JOIN {planted} p ON p.msisdn = d.msisdn AND p.imei = d.imei "
                      f"AND p.first_date = d.first_seen").fetchall()[0][0]
    assert wanted > 0.5 * SMALL_CITY.subscribers  # histories of several handsets, not a handful
    assert matched / found >= 0.99 and matched / wanted >= 0.99, (found, wanted, matched)
    # The in-window changes (seen as imei_change events too) are all among them.
    in_window = con.sql(f"SELECT count(*) FROM read_parquet('{small_city}/truth/handset_changes.parquet') c "
                        f"JOIN {detected} d ON d.msisdn = c.msisdn AND d.imei = c.new_imei AND d.first_seen = c.date").fetchall()[0][0]
    truth_in_window = con.sql(f"SELECT count(*) FROM read_parquet('{small_city}/truth/handset_changes.parquet')").fetchall()[0][0]
    assert in_window == truth_in_window > 0


def test_knockoffs_are_flagged_with_their_reason(terminal_run, small_city):
    con = duckdb.connect()
    rows = con.sql(f"""
        SELECT t.reason, d.knockoff_reason
        FROM read_parquet('{small_city}/truth/knockoffs.parquet') t
        FULL JOIN (SELECT * FROM {_devices(terminal_run)} WHERE knockoff_reason IS NOT NULL) d
          ON d.msisdn = t.msisdn AND d.imei = t.imei
    """).fetchall()
    planted = [r for r in rows if r[0] is not None]
    flagged = [r for r in rows if r[1] is not None]
    both = [r for r in rows if r[0] is not None and r[1] is not None]
    assert len(both) / len(flagged) >= 0.95 and len(both) / len(planted) >= 0.95, rows
    for truth, found in both:
        # A cloned TAC shows as another brand than the TAC's, or as one of too many models on it.
        assert found == truth or (truth == "cloned_tac" and found == "brand_mismatch"), (truth, found)
    assert {"unknown_tac", "bad_check_digit", "brand_mismatch"} <= {f for _, f in both}


def test_terminal_features_and_tags(terminal_run):
    features = {f.name: f for f in catalogue()}
    for name in ["handset_brand", "handset_tier", "has_5g_handset", "change_cycle_days", "brand_streak", "is_knockoff"]:
        assert features[name].source == "imei_observations"
    counts = dict(TagSnapshot.objects.filter(snapshot__run=terminal_run, tag__category="terminal")
                  .values_list("tag__code", "subscriber_count"))
    assert set(counts) == {"phone_enthusiast", "brand_loyalist", "five_g_handset_no_plan", "ageing_handset",
                           "legacy_handset_heavy_data", "knockoff_user"}
    for code in ["phone_enthusiast", "brand_loyalist", "five_g_handset_no_plan", "ageing_handset", "knockoff_user"]:
        assert 0 < counts[code] < SMALL_CITY.subscribers, (code, counts[code])
    files = store.files_sql(sorted(str(p) for p in (snapshot_dir(terminal_run.id) / "terminals").glob("part=*.parquet")))
    row = duckdb.connect().sql(f"""SELECT count(*), count(handset_brand), count(*) FILTER (WHERE is_knockoff),
                                count(*) FILTER (WHERE handset_changes_12m > devices_12m), min(brand_streak)
                         FROM read_parquet({files})""").fetchall()[0]
    subscribers, with_brand, knockoffs, impossible, streak = row
    assert subscribers == SMALL_CITY.subscribers and with_brand > 0.9 * subscribers
    assert knockoffs == counts["knockoff_user"] and impossible == 0 and streak >= 1


def test_luhn_in_sql_agrees_with_the_textbook():
    rng = np.random.default_rng(3)
    bodies = rng.integers(10**13, 10**14, 200)
    good = [f"{b}{d}" for b, d in zip(bodies, luhn_digit(bodies))]
    bad = [f"{b}{(d + 1) % 10}" for b, d in zip(bodies, luhn_digit(bodies))]
    con = duckdb.connect()
    con.execute("CREATE TABLE t (imei VARCHAR, valid BOOLEAN)")
    con.executemany("INSERT INTO t VALUES (?, ?)", [(i, True) for i in good] + [(i, False) for i in bad] + [("490154203237518", True)])
    assert con.sql(f"SELECT count(*) FROM t WHERE {luhn_ok_sql('imei')} <> valid").fetchall()[0][0] == 0


# --- bad input ---------------------------------------------------------------------------------------------


def test_imei_observations_in_the_future_or_malformed_are_refused_with_their_line(small_city, tmp_path, data_dir):
    ingest_city(small_city, ["regions", "products", "tac_catalogue", "cells", "subscribers"])
    msisdn = known_msisdns(small_city, 1)[0]
    tomorrow = date.today() + timedelta(days=2)
    files = lake_files(data_dir)
    batch = ingest_file(dataset="imei_observations", path=write(tmp_path, "imei.csv", (
        "msisdn,date,imei,brand,model\n"
        f"{msisdn},2026-10-20,490154203237518,Huawei,Mate 60 Pro\n"
        f"{msisdn},{tomorrow},490154203237518,,\n"
        f"{msisdn},2026-10-21,49015420323751,,\n")))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=3, column="date", reason_part="future")
    assert any(e["line"] == 4 and e["column"] == "imei" for e in batch.errors)


def test_observations_without_reported_models_still_make_chains(small_city, tmp_path, data_dir, run_to_end):
    """Reported brand and model are optional: a source without them loses only the clone checks."""
    ingest_city(small_city, ["regions", "products", "tac_catalogue", "cells", "subscribers"])
    msisdn = known_msisdns(small_city, 1)[0]
    tac = duckdb.connect().sql(f"SELECT tac FROM read_csv('{small_city}/tac_catalogue.csv', all_varchar=true) LIMIT 1").fetchall()[0][0]
    body = int(f"{tac}000001")
    imei_a, imei_b = f"{body}{luhn_digit(np.array([body]))[0]}", f"{body + 1}{luhn_digit(np.array([body + 1]))[0]}"
    batch = ingest_file(dataset="imei_observations", path=write(tmp_path, "imei.csv", (
        f"msisdn,date,imei\n{msisdn},2026-01-05,{imei_a}\n{msisdn},2026-06-01,{imei_a}\n{msisdn},2026-06-02,{imei_b}\n")))
    assert batch.status == IngestBatch.Status.ACCEPTED, batch.errors
    run = run_to_end(start_snapshot_run(as_of=AS_OF, window_days=SMALL_CITY.days, partition_size=2000))
    chain = duckdb.connect().sql(f"SELECT imei, position, first_seen, knockoff_reason FROM {_devices(run)} "
                       f"WHERE msisdn = '{msisdn}' ORDER BY position").fetchall()
    assert chain == [(imei_a, 1, date(2026, 1, 5), None), (imei_b, 2, date(2026, 6, 2), None)]


# --- what sales staff and field teams see ------------------------------------------------------------------


def test_a_district_sales_user_sees_only_their_district(terminal_run, client):
    from rest_framework.test import APIClient

    from tagging.models import HandsetSwitch, Region, StaffProfile, Subscriber, TerminalSummary

    from .factories import staff_user

    chancheng = Region.objects.get(code="440604")
    sales = staff_user(StaffProfile.Role.SALES, chancheng, username="chancheng_sales")
    api = APIClient()
    api.force_authenticate(sales)
    mine = TerminalSummary.objects.get(snapshot__run=terminal_run, region=chancheng)
    everyone = sum(TerminalSummary.objects.filter(snapshot__run=terminal_run).values_list("with_handset", flat=True))
    brands = api.get("/api/v1/terminals/mix/?by=brand").json()
    assert brands["subscribers"] == mine.with_handset < everyone
    assert abs(sum(r["share"] for r in brands["rows"]) - 1) < 0.01
    models = api.get("/api/v1/terminals/mix/").json()
    assert sum(r["subscribers"] for r in models["rows"]) == mine.with_handset and {"brand", "model", "tier"} <= set(models["rows"][0])

    switching = api.get("/api/v1/terminals/switching/").json()
    assert switching["changes"] == sum(HandsetSwitch.objects.filter(snapshot__run=terminal_run, region=chancheng)
                                       .values_list("changes", flat=True)) > 0
    for i, brand in enumerate(switching["per_brand"]):
        left = sum(switching["matrix"][i])
        assert brand["changes_from"] == left
        assert brand["retention"] == (round(switching["matrix"][i][i] / left, 4) if left else None)

    cycle = api.get("/api/v1/terminals/change-cycle/").json()
    assert sum(b["subscribers"] for b in cycle["bins"]) + cycle["unknown"] == cycle["with_handset"] == mine.with_handset

    # A subscriber's handsets: masked, and only within the user's districts.
    own = Subscriber.objects.filter(region=chancheng).first()
    other = Subscriber.objects.exclude(region=chancheng).first()
    history = api.get(f"/api/v1/subscribers/{own.id}/terminals/").json()
    assert history["handsets"] and history["over_time"][-1]["as_of_date"] == str(AS_OF)
    assert len(history["changes"]) == len(history["handsets"]) - 1
    for change, handset in zip(history["changes"], history["handsets"][1:]):
        assert (change["date"], change["to_model"]) == (handset["first_seen"], handset["model"])
    for handset in history["handsets"]:
        assert handset["imei"][8:14] == "******"
    assert api.get(f"/api/v1/subscribers/{other.id}/terminals/").status_code == 404

    client.force_login(sales)
    page = client.get("/terminals/").content.decode()
    assert 'id="switching-matrix"' in page and 'id="change-cycle-chart"' in page and "<rect" in page
    assert "Apple" in page or "Huawei" in page
    assert "‰" not in page  # shares in percent, like the rest of the page
    # Handsets the catalogue lacks have no network or tier: named as such, like their brand, not "?".
    networks = api.get("/api/v1/terminals/mix/?by=network").json()["rows"]
    assert any(not r["network"] for r in networks) and "<div>未登记: " in page and "<div>?" not in page


@pytest.mark.parametrize(("query", "code"), [("by=colour", 400), ("snapshot=latest", 400), ("snapshot=99999", 404)])
def test_terminal_api_refuses_bad_parameters(terminal_run, query, code):
    from rest_framework.test import APIClient

    from tagging.models import Region, StaffProfile

    from .factories import staff_user

    field = staff_user(StaffProfile.Role.FIELD, Region.objects.get(code="440605"), username="nanhai_field")
    api = APIClient()
    api.force_authenticate(field)
    response = api.get(f"/api/v1/terminals/mix/?{query}")
    assert response.status_code == code, response.content


def test_terminal_views_need_the_permission(terminal_run, client):
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    nobody = get_user_model().objects.create_user("nobody", password="x")
    api = APIClient()
    api.force_authenticate(nobody)
    assert api.get("/api/v1/terminals/mix/").status_code == 403
    client.force_login(nobody)
    assert client.get("/terminals/").status_code == 403


def test_admin_lists_device_models_with_shares_in_the_admins_districts(terminal_run, client):
    import re

    from tagging.models import Region, StaffProfile, TerminalShare

    from .factories import staff_user

    nanhai = Region.objects.get(code="440605")
    admin_user = staff_user(StaffProfile.Role.ADMIN, nanhai, username="nanhai_admin")
    client.force_login(admin_user)
    page = client.get("/admin/tagging/terminalshare/").content.decode()
    shares = [float(s.rstrip("%")) for s in re.findall(r'field-share">([0-9.]+)%<', page)]
    rows = TerminalShare.objects.filter(snapshot__run=terminal_run, region=nanhai)
    assert len(shares) == min(rows.count(), 100) and abs(sum(shares) - 100) < 0.5  # one district, one snapshot
    assert TerminalShare.objects.exclude(region=nanhai).exists()
    assert client.get("/admin/tagging/handsetswitch/").status_code == 200


def test_a_tac_catalogue_with_bad_rows_is_refused_with_their_lines(tmp_path, data_dir):
    files = lake_files(data_dir)
    batch = ingest_file(dataset="tac_catalogue", path=write(tmp_path, "tac.csv", (
        "tac,brand,model,release_year,tier,network,os,price_yuan\n"
        "86012345,Huawei,Mate 60 Pro,2023,flagship,5G,HarmonyOS,6999\n"
        "8601234,Huawei,Mate 60,2023,high,5G,HarmonyOS,5999\n"
        "86012399,Apple,iPhone 16,2024,ultra,6G,iOS,5999\n")))
    assert_rejected_and_nothing_changed(batch, data_dir, files, line=3, column="tac", reason_part="8 digits")
    assert {e["column"] for e in batch.errors if e["line"] == 4} >= {"tier", "network"}
