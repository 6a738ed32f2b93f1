"""Micro-areas from a polygon, a hex list or a cell list; bad input refused, naming the field."""

import duckdb
import h3
import pytest

from microarea.models import MicroArea
from microarea.services.coverage import cell_coverage, cell_footprints
from microarea.services.micro_areas import MicroAreaRefused, create_micro_area
from tagging.models import Region, StaffProfile

from .conftest import ingest_city
from .factories import staff_user

pytestmark = pytest.mark.django_db

SQUARE = {"type": "Polygon", "coordinates": [[[113.10, 23.00], [113.12, 23.00], [113.12, 23.02], [113.10, 23.02], [113.10, 23.00]]]}


@pytest.fixture
def city(small_city):
    ingest_city(small_city, ["regions", "cells"])
    coverage = cell_coverage()
    keys = duckdb.connect().sql(f"SELECT DISTINCT cell_key FROM read_parquet('{coverage}') ORDER BY 1").fetchnumpy()["cell_key"]
    return {"cells": cell_footprints(coverage, list(keys)), "coverage": coverage, "region": Region.objects.get(code="440604")}


def make(city, **kwargs):
    defaults = {"name": "季华商圈", "kind": "business", "region": city["region"], "coverage_file": city["coverage"]}
    return create_micro_area(**{**defaults, **kwargs})


def test_a_drawn_polygon_becomes_its_hexes(city):
    area = make(city, geometry=SQUARE)
    hexes = area.hex_array()
    assert area.source == "polygon" and area.hex_count == len(hexes) > 20  # about 4.5 km2 of 0.1 km2 hexes
    for cell in hexes[:20]:
        lat, lon = h3.cell_to_latlng(h3.int_to_str(int(cell)))
        assert 113.10 <= lon <= 113.12 and 23.00 <= lat <= 23.02


def test_hexes_and_cells_make_areas_too(city):
    parent = h3.cell_to_parent(h3.latlng_to_cell(23.01, 113.11, 9), 8)
    listed = make(city, name="hex list", hexes=[parent, h3.latlng_to_cell(23.05, 113.15, 9)])
    assert listed.hex_count == 7 + 1  # a res-8 hex stands for its seven res-9 children
    keys = list(city["cells"])[:3]
    from_cells = make(city, name="cells", cells=keys)
    assert set(from_cells.hex_array().tolist()) == {h for k in keys for h in city["cells"][k]}


@pytest.mark.parametrize(("kwargs", "field", "words"), [
    ({"geometry": {"type": "Polygon", "coordinates": [[[113.10, 23.00], [113.12, 23.02], [113.12, 23.00], [113.10, 23.02], [113.10, 23.00]]]}},
     "geometry", "not valid: Self-intersection"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[113.1, 23.0], [113.1, 23.0], [113.1, 23.0], [113.1, 23.0]]]}}, "geometry", "empty"),
    ({"geometry": {"type": "Polygon", "coordinates": []}}, "geometry", "empty"),
    ({"geometry": {"type": "Point", "coordinates": [113.1, 23.0]}}, "geometry", "not a Point"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[116.3, 39.9], [116.4, 39.9], [116.4, 40.0], [116.3, 39.9]]]}},
     "geometry", "outside the city"),
    ({"geometry": {"type": "Polygon", "coordinates": [[[23.0, 113.1], [23.02, 113.1], [23.02, 113.12], [23.0, 113.1]]]}},
     "geometry", "longitude, latitude"),
    ({"geometry": "not json"}, "geometry", "not a GeoJSON polygon"),
    ({"hexes": ["not-a-hex"]}, "hexes", "item 1"),
    ({"hexes": [h3.latlng_to_cell(23.0, 113.1, 11)]}, "hexes", "finer than resolution 9"),
    ({"hexes": []}, "hexes", "empty"),
    ({"cells": ["LTE-460-0-1-1"]}, "cells", "unknown cells: LTE-460-0-1-1"),
    ({"geometry": SQUARE, "hexes": ["8841"]}, "geometry", "exactly one"),
    ({"geometry": SQUARE, "name": "  "}, "name", "needs a name"),
    ({"geometry": SQUARE, "kind": "stadium"}, "kind", "kind must be one of"),
])
def test_bad_input_is_refused_naming_the_field(city, kwargs, field, words):
    with pytest.raises(MicroAreaRefused) as refused:
        make(city, **kwargs)
    assert refused.value.field == field and words in str(refused.value), str(refused.value)
    assert not MicroArea.objects.exists()


def test_names_are_unique_in_a_district_and_only_your_districts(city):
    make(city, geometry=SQUARE)
    with pytest.raises(MicroAreaRefused, match="already has"):
        make(city, geometry=SQUARE)
    shunde_sales = staff_user(StaffProfile.Role.SALES, Region.objects.get(code="440606"), username="shunde")
    with pytest.raises(MicroAreaRefused, match="not one of yours") as refused:
        make(city, name="other", geometry=SQUARE, user=shunde_sales)
    assert refused.value.field == "region"
    assert list(MicroArea.objects.visible_to(shunde_sales)) == []


def test_the_districts_come_in_as_micro_areas_and_bad_files_change_nothing(city, small_city, tmp_path):
    import json

    from django.core.management import CommandError, call_command

    call_command("import_micro_areas", str(small_city / "districts.geojson"))
    districts = MicroArea.objects.filter(kind="district")
    assert districts.count() == 5 and all(d.hex_count > 1000 for d in districts)
    call_command("import_micro_areas", str(small_city / "districts.geojson"))  # again: nothing new
    assert MicroArea.objects.count() == 5
    bad = json.loads((small_city / "districts.geojson").read_text())
    for feature in bad["features"]:
        feature["properties"]["name"] += " 2"
    bad["features"][1]["geometry"] = {"type": "Polygon", "coordinates": [[[113.1, 23.0], [113.2, 23.1], [113.2, 23.0], [113.1, 23.1], [113.1, 23.0]]]}
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(bad))
    with pytest.raises(CommandError, match="feature 2 .*not valid"):
        call_command("import_micro_areas", str(path))
    assert MicroArea.objects.count() == 5  # the first feature of the bad file was not kept either


def test_the_api_lists_your_areas_as_geojson_and_draws_new_ones(city):
    from rest_framework.test import APIClient

    # An analyst: sales staff draw only areas with enough residents, and there is no snapshot here to count them.
    chancheng_analyst = staff_user(StaffProfile.Role.ADMIN, city["region"], username="cc_analyst")
    field = staff_user(StaffProfile.Role.FIELD, Region.objects.get(code="440606"), username="sd_field")
    api = APIClient()
    api.force_authenticate(chancheng_analyst)
    drawn = api.post("/api/v1/microareas/", {"name": "岭南天地", "kind": "business", "region": "440604", "geometry": SQUARE},
                     format="json")
    assert drawn.status_code == 201, drawn.content
    assert drawn.json()["properties"]["hexes"] > 20 and drawn.json()["geometry"] == SQUARE
    listed = api.post("/api/v1/microareas/", {"name": "hexes", "region": "440604",
                                              "hexes": [h3.latlng_to_cell(23.01, 113.11, 8)]}, format="json")
    assert listed.status_code == 201 and listed.json()["geometry"]["type"] in ("Polygon", "MultiPolygon")
    collection = api.get("/api/v1/microareas/").json()
    assert collection["type"] == "FeatureCollection" and {f["properties"]["name"] for f in collection["features"]} == {"岭南天地", "hexes"}
    bowtie = {"type": "Polygon", "coordinates": [[[113.10, 23.00], [113.12, 23.02], [113.12, 23.00], [113.10, 23.02], [113.10, 23.00]]]}
    refused = api.post("/api/v1/microareas/", {"name": "x", "region": "440604", "geometry": bowtie}, format="json")
    assert refused.status_code == 400 and "Self-intersection" in refused.json()["geometry"][0]
    elsewhere = api.post("/api/v1/microareas/", {"name": "x", "region": "440606", "geometry": SQUARE}, format="json")
    assert elsewhere.status_code == 400 and "region" in elsewhere.json()
    api.force_authenticate(field)
    assert api.get("/api/v1/microareas/").json()["features"] == []  # Shunde sees none of Chancheng's
    assert api.post("/api/v1/microareas/", {"name": "y", "region": "440606", "geometry": SQUARE}, format="json").status_code == 403


def test_admin_lists_the_areas_of_your_regions(city, client):
    make(city, geometry=SQUARE)
    admin_user = staff_user(StaffProfile.Role.ADMIN, city["region"], username="cc_admin")
    client.force_login(admin_user)
    page = client.get("/admin/microarea/microarea/").content.decode()
    assert "季华商圈" in page
    other = staff_user(StaffProfile.Role.ADMIN, Region.objects.get(code="440606"), username="sd_admin")
    client.force_login(other)
    assert "季华商圈" not in client.get("/admin/microarea/microarea/").content.decode()


@pytest.mark.django_db(transaction=True)  # the run's tasks are sent when its transaction commits
def test_hexes_of_a_district_with_metrics_and_small_counts_suppressed(small_city, run_to_end, settings):
    from rest_framework.test import APIClient

    from tagging.services.snapshots import start_snapshot_run

    from .conftest import SMALL_CITY

    ingest_city(small_city)
    run_to_end(start_snapshot_run(as_of=SMALL_CITY.end_date, window_days=SMALL_CITY.days, partition_size=600))
    chancheng = Region.objects.get(code="440604")
    sales = staff_user(StaffProfile.Role.SALES, chancheng, username="cc_hex")
    api = APIClient()
    api.force_authenticate(sales)
    settings.AREA_MIN_COUNT = 1
    everything = api.get("/api/v1/hexes/?resolution=7").json()
    assert everything["type"] == "FeatureCollection" and everything["features"]
    in_chancheng = sum(f["properties"]["subscribers"] for f in everything["features"])
    assert 0 < in_chancheng < SMALL_CITY.subscribers  # one district's homes only
    first = everything["features"][0]
    assert first["geometry"]["type"] == "Polygon" and len(first["geometry"]["coordinates"][0]) == 7
    assert h3.get_resolution(first["properties"]["h3"]) == 7
    res9 = api.get("/api/v1/hexes/?resolution=9").json()["features"]
    assert sum(f["properties"]["subscribers"] for f in res9) == in_chancheng  # rolls up exactly
    share = api.get("/api/v1/hexes/?resolution=7&metric=penetration&product=5g_plan").json()["features"]
    assert all(0 <= f["properties"]["value"] <= 1 for f in share)
    settings.AREA_MIN_COUNT = 5
    suppressed = api.get("/api/v1/hexes/?resolution=9").json()["features"]
    small = [f for f in suppressed if f["properties"]["suppressed"]]
    assert small and all(f["properties"]["subscribers"] is None and f["properties"]["value"] is None for f in small)
    for query, field in [("resolution=6", "resolution"), ("metric=colour", "metric"), ("metric=penetration", "product"),
                         ("metric=product_users&product=nope", "product"), ("basis=school", "basis")]:
        response = api.get(f"/api/v1/hexes/?{query}")
        assert response.status_code == 400 and field in response.json(), (query, response.content)
