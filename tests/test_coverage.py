"""Coverage footprints: sectors clipped to the site's Voronoi region, filled with res-9 hexes."""

import h3
import numpy as np

from microarea.coverage import RESOLUTION, footprints, sites_of

NAN = float("nan")


def run(cells: list[tuple]) -> dict:
    key, lon, lat, azimuth, beamwidth, range_m, site = zip(*cells)
    return footprints(np.array(key, dtype=object), np.array(lon), np.array(lat), np.array(azimuth, dtype=float),
                      np.array(beamwidth, dtype=float), np.array(range_m, dtype=float), np.array(site, dtype=object))


def hexes_of(result: dict, key: str) -> list[int]:
    return [int(h) for k, h in zip(result["cell_key"], result["h3"]) if k == key]


def bearing_km(from_lonlat, to_lonlat) -> tuple[float, float]:
    dx = (to_lonlat[0] - from_lonlat[0]) * 111.32 * np.cos(np.radians(from_lonlat[1]))
    dy = (to_lonlat[1] - from_lonlat[1]) * 110.57
    return float(np.degrees(np.arctan2(dx, dy)) % 360), float(np.hypot(dx, dy))


def test_sectors_point_their_way_and_weights_sum_to_one():
    site = (113.10, 23.00)
    cells = [(f"LTE-460-0-1-{i}", *site, azimuth, 65, 1500, "S1") for i, azimuth in enumerate([0, 120, 240])]
    result = run(cells)
    directions = []
    for key, azimuth in [("LTE-460-0-1-0", 0), ("LTE-460-0-1-1", 120), ("LTE-460-0-1-2", 240)]:
        hexes = hexes_of(result, key)
        assert len(hexes) > 10
        weights = [w for k, w in zip(result["cell_key"], result["weight"]) if k == key]
        assert abs(sum(weights) - 1) < 1e-9 and len(set(weights)) == 1
        for cell in hexes:
            lat, lon = h3.cell_to_latlng(h3.int_to_str(cell))
            direction, distance = bearing_km(site, (lon, lat))
            # Each sector serves the directions nearer its azimuth than the other two (120 degrees), not
            # only its 65-degree beam: together they leave no direction to no cell.
            gap = abs((direction - azimuth + 180) % 360 - 180)
            assert distance < 1.7 and gap <= 60 + 15, (key, direction)
            assert h3.get_resolution(h3.int_to_str(cell)) == RESOLUTION
            directions.append(gap)
    assert max(directions) > 45  # wider than the beam
    assert len(result["h3"]) == len(set(result["h3"].tolist()))  # no hex in two sectors of a site


def test_a_sites_only_azimuth_covers_its_beam_and_cells_on_one_antenna_share_it():
    site = (113.10, 23.00)
    result = run([("lone", *site, 90, 40, 1500, "S1"), ("LTE", 113.20, 23.00, 0, 65, 1500, "S2"),
                  ("NR", 113.20, 23.00, 0, 65, 1500, "S2"), ("LTE-2", 113.20, 23.00, 180, 65, 1500, "S2")])
    for cell in hexes_of(result, "lone"):
        lat, lon = h3.cell_to_latlng(h3.int_to_str(cell))
        assert abs(bearing_km(site, (lon, lat))[0] - 90) <= 20 + 15
    assert hexes_of(result, "LTE") == hexes_of(result, "NR")  # two radios on one antenna: the same sector
    north = [bearing_km((113.20, 23.00), h3.cell_to_latlng(h3.int_to_str(c))[::-1])[0] for c in hexes_of(result, "LTE")]
    assert any(60 < d < 90 + 15 for d in north)  # half of the way to the other azimuth, 180 degrees away
    assert set(hexes_of(result, "LTE")).isdisjoint(hexes_of(result, "LTE-2"))


def test_a_sector_stops_where_the_next_site_is_nearer():
    west, east = (113.10, 23.00), (113.11, 23.00)  # about 1 km apart
    result = run([("A", *west, 90, 90, 3000, "W"), ("B", *east, 270, 90, 3000, "E")])
    for key, own, other in [("A", west, east), ("B", east, west)]:
        for cell in hexes_of(result, key):
            lat, lon = h3.cell_to_latlng(h3.int_to_str(cell))
            _, to_own = bearing_km(own, (lon, lat))
            _, to_other = bearing_km(other, (lon, lat))
            assert to_own <= to_other + 0.2, key  # a hex's centre lies within its region (res 9: ~0.17 km edge)


def test_omni_and_tiny_cells_take_a_single_hex():
    result = run([("omni", 113.2, 23.1, NAN, NAN, NAN, ""), ("tiny", 113.3, 23.2, 45, 10, 100, "")])
    assert hexes_of(result, "omni") == [h3.str_to_int(h3.latlng_to_cell(23.1, 113.2, RESOLUTION))]
    tiny = hexes_of(result, "tiny")
    assert len(tiny) == 1
    lat, lon = h3.cell_to_latlng(h3.int_to_str(tiny[0]))
    assert bearing_km((113.3, 23.2), (lon, lat))[1] < 0.3
    assert list(result["weight"]) == [1.0, 1.0]


def test_sites_come_from_site_id_or_a_shared_position():
    site = sites_of(np.array(["S1", "S1", "", "", ""], dtype=object), np.array([1.0, 2.0, 3.0, 3.0, 4.0]),
                    np.array([1.0, 2.0, 3.0, 3.0, 4.0]))
    assert site[0] == site[1] and site[2] == site[3] and len(set(site)) == 3


def test_no_cells_no_footprints():
    empty = np.zeros(0)
    result = footprints(np.zeros(0, dtype=object), empty, empty, empty, empty, empty, np.zeros(0, dtype=object))
    assert len(result["h3"]) == 0


def test_the_lakes_cells_get_footprints_once(small_city, db):
    import duckdb

    from microarea.services.coverage import cell_coverage
    from tests.conftest import ingest_city

    assert cell_coverage() is None  # no cells yet
    ingest_city(small_city, ["regions", "cells"])
    path = cell_coverage()
    sums = duckdb.sql(f"SELECT cell_key, sum(weight) AS w, count(*) AS n FROM read_parquet('{path}') GROUP BY 1").fetchall()
    cells = duckdb.sql(f"SELECT count(*) FROM read_csv('{small_city}/cells.csv')").fetchall()[0][0]
    assert len(sums) == cells and all(abs(w - 1) < 1e-9 for _, w, _ in sums)
    assert max(n for _, _, n in sums) > 1  # sectors spread over several hexes
    stamp = path.stat().st_mtime_ns
    assert cell_coverage() == path and path.stat().st_mtime_ns == stamp  # made once, then reused
