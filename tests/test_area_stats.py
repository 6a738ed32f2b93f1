"""Per-area statistics (micro-area and hex panels), customer classes, moves between snapshots and a
subscriber's ownership history, checked against the snapshot's own subscriber files and the simulator's truth."""

import json
from datetime import timedelta

import duckdb
import h3
import pytest
from rest_framework.test import APIClient

from microarea.models import MicroArea
from microarea.services.imports import import_micro_areas
from tagging.lake import store
from tagging.models import Region, StaffProfile
from tagging.services.snapshots import start_snapshot_run
from tagging.services.tags import install_starting_catalogue
from tagging.stages import snapshot_dir

from .conftest import SMALL_CITY, ingest_city
from .factories import staff_user

pytestmark = pytest.mark.django_db(transaction=True)  # the runs' tasks are sent when their transaction commits

WINDOW = 4  # the simulator moves its movers between day 4 and day 9 of 14: before the second window, after the first


@pytest.fixture
def two_snapshots(small_city, run_to_end, settings):
    ingest_city(small_city)
    import_micro_areas(small_city / "districts.geojson")
    install_starting_catalogue()
    first = run_to_end(start_snapshot_run(as_of=SMALL_CITY.start_date + timedelta(days=WINDOW - 1), window_days=WINDOW,
                                          partition_size=600))
    second = run_to_end(start_snapshot_run(as_of=SMALL_CITY.end_date, window_days=WINDOW, partition_size=600))
    settings.AREA_MIN_COUNT = 1
    chancheng = Region.objects.get(code="440604")
    api = APIClient()
    api.force_authenticate(staff_user(StaffProfile.Role.SALES, chancheng, username="cc_stats"))
    return {"first": first, "second": second, "api": api, "region": chancheng,
            "area": MicroArea.objects.get(region=chancheng, kind=MicroArea.Kind.DISTRICT)}


def subscribers_of(run, region: str) -> str:
    """The run's subscribers of one district with their home hex, products, tags and handset."""
    folder = snapshot_dir(run.id)
    return (f"(SELECT * FROM read_parquet('{folder}/features/*.parquet') f "
            f"JOIN read_parquet('{folder}/location/*.parquet') USING (subscriber_id) "
            f"JOIN read_parquet('{folder}/tags/*.parquet') USING (subscriber_id) "
            f"JOIN read_parquet('{folder}/terminals/*.parquet') USING (subscriber_id) "
            f"WHERE f.region_code = '{region}' AND f.status <> 'closed' AND home_h3 IS NOT NULL)")


def test_a_micro_areas_panel_counts_what_its_subscribers_are(two_snapshots):
    api, area = two_snapshots["api"], two_snapshots["area"]
    stats = api.get(f"/api/v1/microareas/{area.id}/stats/?product=5g_plan").json()
    rows = subscribers_of(two_snapshots["second"].snapshot.run, "440604")
    hexes = ", ".join(str(int(c)) for c in area.hex_array())
    inside = f"(SELECT * FROM {rows} WHERE home_h3 IN ({hexes}))"
    living, developed, demand, potential, five_g = duckdb.connect().sql(f"""
        SELECT count(*), count(*) FILTER (WHERE has_5g_plan),
               count(*) FILTER (WHERE NOT has_5g_plan AND five_g_handset_no_plan),
               count(*) FILTER (WHERE NOT has_5g_plan AND NOT five_g_handset_no_plan AND five_g_potential),
               count(*) FILTER (WHERE has_5g_handset)
        FROM {inside}""").fetchall()[0]
    assert living > 100 and stats["subscribers"]["home"] == living
    product = stats["product"]
    assert (product["developed"], product["demand"], product["potential"]) == (developed, demand, potential)
    assert product["demand_tag"] == "five_g_handset_no_plan" and product["potential_tag"] == "five_g_potential"
    assert demand > 0 and potential > 0
    assert stats["five_g_handset_share"] == round(five_g / living, 4)
    # the hex map sums to the same subscribers
    res9 = api.get("/api/v1/hexes/?resolution=9").json()["features"]
    assert sum(f["properties"]["subscribers"] for f in res9 if h3.str_to_int(f["id"]) in set(area.hex_array().tolist())) == living
    for dimension, rows_ in stats["terminal_mix"].items():
        assert rows_ and abs(sum(r["share"] for r in rows_) - 1) < 1e-3, dimension
    brand, count = duckdb.connect().sql(f"SELECT coalesce(handset_brand, 'unknown'), count(*) FROM {inside} "
                                        f"WHERE handset_imei IS NOT NULL GROUP BY ALL ORDER BY 2 DESC, 1 LIMIT 1").fetchall()[0]
    assert (stats["terminal_mix"]["brand"][0]["value"], stats["terminal_mix"]["brand"][0]["subscribers"]) == (brand, count)
    top = stats["top_tags"]
    assert 0 < len(top) <= 10 and [t["count"] for t in top] == sorted((t["count"] for t in top), reverse=True)
    tag = top[0]["code"]
    assert top[0]["count"] == duckdb.connect().sql(f'SELECT count(*) FROM {inside} WHERE "{tag}"').fetchall()[0][0]
    users = {p["code"]: p for p in stats["products"]}
    assert users["5g_plan"]["users"] == developed and users["5g_plan"]["penetration"] == round(developed / living, 4)


def test_change_and_moves_since_the_previous_snapshot(two_snapshots, small_city):
    api, area = two_snapshots["api"], two_snapshots["area"]
    first, second = (two_snapshots[k].snapshot for k in ("first", "second"))
    before = api.get(f"/api/v1/microareas/{area.id}/stats/?snapshot={first.id}").json()
    now = api.get(f"/api/v1/microareas/{area.id}/stats/").json()
    assert before["previous_snapshot"] is None and before["moves"] is None
    assert now["previous_snapshot"]["id"] == first.id
    assert now["subscribers"]["home_change"] == now["subscribers"]["home"] - before["subscribers"]["home"]
    # The planted movers (they move between the two windows), seen by a city-wide user: each one's history shows
    # the move, to the new home.
    api = APIClient()
    api.force_authenticate(staff_user(StaffProfile.Role.SALES, *Region.objects.filter(level=Region.Level.DISTRICT),
                                      username="city_stats"))
    now = api.get(f"/api/v1/microareas/{area.id}/stats/").json()
    truth = f"read_parquet('{small_city}/truth/subscribers.parquet')"
    movers = duckdb.connect().sql(f"""
        SELECT s.subscriber_id, t.final_home_cell FROM {truth} t JOIN {store.current_sql('subscribers')} s ON t.msisdn = s.msisdn::VARCHAR
        WHERE t.moved""").fetchall()
    histories = {sid: (api.get(f"/api/v1/subscribers/{sid}/locations/").json()["history"], final) for sid, final in movers}
    known = {sid: (history, final) for sid, (history, final) in histories.items()
             if len(history) == 2 and history[0]["home_known"] and history[1]["home_known"]}
    assert len(known) >= 5
    found = [sid for sid, (history, final) in known.items() if history[1]["home_moved"] and history[1]["home_cell"] == final]
    assert len(found) / len(known) >= 0.9, (len(found), len(known))
    # Movers across the district's edge are counted in its moves (non-movers whose home hex shifted may add to them).
    name = area.name
    entered = sum(1 for sid in found if name not in known[sid][0][0]["home_areas"] and name in known[sid][0][1]["home_areas"])
    left = sum(1 for sid in found if name in known[sid][0][0]["home_areas"] and name not in known[sid][0][1]["home_areas"])
    assert entered + left > 0
    assert now["moves"]["moved_in"] >= entered and now["moves"]["moved_out"] >= left
    assert api.get("/api/v1/subscribers/999999/locations/").status_code == 404


def test_an_areas_targets_export_and_bad_requests(two_snapshots):
    api, area = two_snapshots["api"], two_snapshots["area"]
    stats = api.get(f"/api/v1/microareas/{area.id}/stats/?product=5g_plan").json()["product"]
    response = api.get(f"/api/v1/microareas/{area.id}/targets/?product=5g_plan")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = b"".join(response.streaming_content).decode().splitlines()
    header, rows = lines[0].split(","), [line.split(",") for line in lines[1:]]
    assert header == ["subscriber_id", "msisdn", "region_code", "customer_class", "home_h3", "home_confidence"]
    # The area's demand and potential customers less those the contact policy leaves out (opted out, not active).
    left_out = duckdb.connect().sql(f"""
        SELECT count(*) FROM {subscribers_of(two_snapshots["second"].snapshot.run, "440604")} c
        JOIN {store.current_sql('subscribers')} s USING (subscriber_id)
        WHERE NOT c.has_5g_plan AND (c.five_g_handset_no_plan OR c.five_g_potential)
          AND c.home_h3 IN (SELECT unnest($hexes::UBIGINT[])) AND (s.marketing_opt_out OR s.status <> 'active')""",
                                    params={"hexes": area.hex_array().tolist()}).fetchall()[0][0]
    assert left_out > 0 and len(rows) == stats["demand"] + stats["potential"] - left_out
    assert {r[3] for r in rows} == {"demand", "potential"} and {r[2] for r in rows} == {"440604"}
    assert all("****" in r[1] for r in rows)
    assert all(h3.str_to_int(r[4]) in set(area.hex_array().tolist()) for r in rows)
    developed = api.get(f"/api/v1/microareas/{area.id}/targets/?product=5g_plan&class=developed&format=json")
    body = json.loads(b"".join(developed.streaming_content))
    assert 0 < len(body["rows"]) <= stats["developed"] and body["columns"][0] == "subscriber_id"
    hex_cell = rows[0][4]
    one_hex = api.get(f"/api/v1/hexes/{hex_cell}/targets/?product=5g_plan")
    assert rows[0][0] in b"".join(one_hex.streaming_content).decode()

    elsewhere = MicroArea.objects.exclude(region=two_snapshots["region"]).first()
    for url, code, field in [
        (f"/api/v1/microareas/{elsewhere.id}/stats/", 404, "detail"),  # another district's area does not exist for you
        (f"/api/v1/microareas/{elsewhere.id}/targets/?product=5g_plan", 404, "detail"),
        (f"/api/v1/microareas/{area.id}/stats/?product=nope", 400, "product"),
        (f"/api/v1/microareas/{area.id}/stats/?snapshot=abc", 400, "snapshot"),
        (f"/api/v1/microareas/{area.id}/stats/?snapshot=99999", 404, "detail"),
        (f"/api/v1/microareas/{area.id}/targets/", 400, "product"),
        (f"/api/v1/microareas/{area.id}/targets/?product=5g_plan&class=vip", 400, "class"),
        (f"/api/v1/microareas/{area.id}/targets/?product=5g_plan&format=xlsx", 400, "format"),
        ("/api/v1/hexes/8a411d7851fffff/stats/", 400, "hex"),  # resolution 10
        ("/api/v1/hexes/not-a-hex/stats/", 400, "hex"),
        ("/api/v1/hexes/not-a-hex/targets/?product=5g_plan", 400, "hex"),
    ]:
        answer = api.get(url)
        assert answer.status_code == code and field in answer.json(), (url, answer.status_code, answer.content[:200])
    assert APIClient().get(f"/api/v1/microareas/{area.id}/stats/").status_code in (401, 403)


def test_audiences_select_by_area_and_hex(two_snapshots):
    api, area = two_snapshots["api"], two_snapshots["area"]
    rows = subscribers_of(two_snapshots["second"].snapshot.run, "440604")
    hexes = ", ".join(str(int(c)) for c in area.hex_array())
    expected = duckdb.connect().sql(f"SELECT count(*) FROM {rows} WHERE home_h3 IN ({hexes}) AND five_g_handset_no_plan").fetchall()[0][0]
    preview = api.post("/api/v1/audiences/preview", {"expression": f'five_g_handset_no_plan and area("{area.name}")'},
                       format="json").json()
    assert expected > 0 and preview["count"] == expected
    qualified = api.post("/api/v1/audiences/preview", {"expression": f'five_g_handset_no_plan and area("禅城区/{area.name}")'},
                         format="json").json()
    assert qualified["count"] == expected
    cell = duckdb.connect().sql(f"SELECT home_h3 FROM {rows} GROUP BY 1 ORDER BY count(*) DESC LIMIT 1").fetchall()[0][0]
    parent = h3.cell_to_parent(h3.int_to_str(int(cell)), 8)
    children = ", ".join(str(h3.str_to_int(c)) for c in h3.cell_to_children(parent, 9))
    in_hex = duckdb.connect().sql(f"SELECT count(*) FROM {rows} WHERE home_h3 IN ({children})").fetchall()[0][0]
    sales_refused = api.post("/api/v1/audiences/preview", {"expression": f'hex("{parent}")'}, format="json")
    assert sales_refused.status_code == 400 and "counting single hexes is for analysts" in sales_refused.json()["detail"]
    api = APIClient()
    api.force_authenticate(staff_user(StaffProfile.Role.ADMIN, two_snapshots["region"], username="cc_analyst"))
    everyone_there = api.post("/api/v1/audiences/preview", {"expression": f'hex("{parent}") or not hex("{parent}")'},
                              format="json").json()
    there = api.post("/api/v1/audiences/preview", {"expression": f'hex("{parent}")'}, format="json").json()
    assert there["count"] >= in_hex > 0 and everyone_there["count"] == everyone_there["subscribers"]
    elsewhere = MicroArea.objects.exclude(region=two_snapshots["region"]).first()
    refused = api.post("/api/v1/audiences/preview", {"expression": f'area("{elsewhere.name}")'}, format="json")
    assert refused.status_code == 400 and "no micro-area of that name in your districts" in str(refused.json())
