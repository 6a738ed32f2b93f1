"""The simulated city: deterministic, realistic in the ways the pipeline depends on, with its truth."""

import hashlib
import json

import duckdb
import numpy as np
import pytest

from simulation import CityParameters, simulate_city
from simulation.handsets import luhn_digit

from .conftest import SMALL_CITY

RAW = ["regions", "products", "cells", "tac_catalogue", "subscribers", "subscriptions", "usage_daily", "stays",
       "events", "imei_observations"]


def q(sql: str):
    return duckdb.execute(sql).fetchall()


def digest(folder) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file() and p.name != "city.json"}


def test_same_seed_same_files_other_seed_other_city(tmp_path, small_city):
    again = tmp_path / "again"
    simulate_city(SMALL_CITY, again)
    assert digest(again) == digest(small_city)
    other = tmp_path / "other"
    simulate_city(CityParameters(subscribers=SMALL_CITY.subscribers, days=SMALL_CITY.days, seed=8), other)
    assert digest(other)["subscribers.csv"] != digest(small_city)["subscribers.csv"]


def test_every_dataset_and_the_truth_are_written(small_city):
    for name in RAW:
        assert (small_city / f"{name}.csv").stat().st_size > 0, name
    for name in ["subscribers", "handset_changes", "knockoffs", "propensity"]:
        assert (small_city / "truth" / f"{name}.parquet").exists()
    summary = json.loads((small_city / "truth" / "city.json").read_text())
    assert summary["rows"]["subscribers"] == SMALL_CITY.subscribers
    assert json.loads((small_city / "districts.geojson").read_text())["features"][0]["properties"]["region_code"]


def test_sites_have_three_sectors_with_azimuths_and_density_follows_people(small_city):
    sectors = q(f"SELECT count(*), count(DISTINCT azimuth) FROM read_csv('{small_city}/cells.csv') WHERE azimuth IS NOT NULL GROUP BY site_id")
    assert np.mean([n == 3 and d == 3 for n, d in sectors]) > 0.95
    # The densest district centre (Chancheng) has far more sites per km2 than the city as a whole.
    centre, everywhere = q(f"""SELECT count(DISTINCT site_id) FILTER (WHERE abs(lon - 113.11) < 0.03 AND abs(lat - 23.01) < 0.03) / (0.06 * 0.06),
                                      count(DISTINCT site_id) / (0.70 * 0.75) FROM read_csv('{small_city}/cells.csv')""")[0]
    assert centre > 5 * everywhere


def test_a_cells_published_range_reaches_every_home_it_serves(small_city):
    beyond, served = q(f"""
        SELECT count(*) FILTER (WHERE sqrt(power((t.home_lon - c.lon) * 111.32 * cos(radians(c.lat)), 2) + power((t.home_lat - c.lat) * 110.57, 2))
                                      * 1000 > c.range * 1.02 AND c.range < 5000), count(*)
        FROM read_parquet('{small_city}/truth/subscribers.parquet') t
        JOIN read_csv('{small_city}/cells.csv') c ON t.home_cell = c.radio || '-' || c.mcc || '-' || c.net || '-' || c.area || '-' || c.cell""")[0]
    assert served == SMALL_CITY.subscribers and beyond == 0


def test_day_night_and_weekday_rhythms(small_city):
    (night_share,) = q(f"""SELECT avg((hour(to_timestamp(start_time) AT TIME ZONE 'Asia/Shanghai') >= 20
                                     OR hour(to_timestamp(end_time) AT TIME ZONE 'Asia/Shanghai') <= 9)::INT)
                           FROM read_csv('{small_city}/stays.csv')""")[0]
    assert 0.4 < night_share < 0.8
    weekday, weekend = q(f"""SELECT avg(voice_calls) FILTER (WHERE dayofweek(date) BETWEEN 1 AND 5),
                                    avg(voice_calls) FILTER (WHERE dayofweek(date) IN (0, 6)) FROM read_csv('{small_city}/usage_daily.csv')""")[0]
    assert weekday > weekend * 1.1


def test_movers_and_handset_changes_are_planted_and_visible(small_city):
    truth = f"read_parquet('{small_city}/truth/subscribers.parquet')"
    movers = q(f"SELECT count(*) FROM {truth} WHERE moved AND home_cell <> final_home_cell")[0][0]
    assert movers >= 0.01 * SMALL_CITY.subscribers
    changes = q(f"SELECT count(*) FROM read_parquet('{small_city}/truth/handset_changes.parquet')")[0][0]
    events = q(f"SELECT count(*) FROM read_csv('{small_city}/events.csv') WHERE kind = 'imei_change'")[0][0]
    assert changes == events > 0
    # After the change the new IMEI is what the network observes.
    seen = q(f"""SELECT count(*) FROM read_parquet('{small_city}/truth/handset_changes.parquet') c
                 JOIN read_csv('{small_city}/imei_observations.csv', all_varchar=true) o
                   ON o.msisdn = c.msisdn AND o.date::DATE > c.date AND o.imei = c.old_imei""")[0][0]
    assert seen == 0


def test_imeis_pass_luhn_except_the_planted_knockoffs(small_city):
    imeis = np.array([r[0] for r in q(f"SELECT DISTINCT imei FROM read_csv('{small_city}/imei_observations.csv', all_varchar=true)")])
    valid = luhn_digit(np.array([int(i[:14]) for i in imeis])) == np.array([int(i[14]) for i in imeis])
    bad_check = {r[0] for r in q(f"SELECT imei FROM read_parquet('{small_city}/truth/knockoffs.parquet') WHERE reason = 'bad_check_digit'")}
    assert set(imeis[~valid]) <= bad_check and len(bad_check) > 0
    assert luhn_digit(np.array([49015420323751])) == np.array([8])  # the textbook example IMEI 490154203237518


def test_products_follow_the_planted_propensity(small_city):
    (held_high, held_low) = q(f"""SELECT avg(held_at_start::INT) FILTER (WHERE probability >= 0.5),
                                         avg(held_at_start::INT) FILTER (WHERE probability < 0.2)
                                  FROM read_parquet('{small_city}/truth/propensity.parquet')""")[0]
    assert held_high > 0.5 > 0.2 > held_low
    adopted = q(f"""SELECT count(*) FROM read_parquet('{small_city}/truth/propensity.parquet') t
                    JOIN read_csv('{small_city}/subscriptions.csv', all_varchar=true) s USING (msisdn, product_code)
                    WHERE t.adopted_in_window AND s.start_date::DATE >= DATE '{SMALL_CITY.start_date}'""")[0][0]
    assert adopted > 0


@pytest.mark.parametrize("bad", [CityParameters(subscribers=5, days=3), CityParameters(subscribers=100, days=0)])
def test_refuses_a_city_too_small_to_mean_anything(tmp_path, bad):
    with pytest.raises(ValueError):
        simulate_city(bad, tmp_path)


def test_a_subscribers_stays_never_overlap(small_city):
    overlapping = q(f"""SELECT count(*) FROM (
        SELECT start_time, lag(end_time) OVER (PARTITION BY msisdn ORDER BY start_time) AS previous_end
        FROM read_csv('{small_city}/stays.csv')) WHERE start_time < previous_end""")[0][0]
    assert overlapping == 0


def test_blocks_change_the_draws_never_who_is_there(tmp_path, monkeypatch, small_city):
    """Drawn in blocks of 100 subscribers instead of one block for the city: every subscriber-day of usage, every
    handset sighting before the window and every handset change is the same; the stays still never overlap."""
    from simulation import city

    monkeypatch.setattr(city, "BLOCK", 100)
    blocks = tmp_path / "blocks"
    simulate_city(SMALL_CITY, blocks)
    start = json.loads((small_city / "truth" / "city.json").read_text())["start_date"]
    queries = {
        "usage_daily": "SELECT msisdn, date FROM read_csv('CITY/usage_daily.csv')",
        "history": f"SELECT msisdn, date, imei FROM read_csv('CITY/imei_observations.csv', types={{'imei': 'VARCHAR'}}) WHERE date < '{start}'",
        "changes": "SELECT msisdn, imei FROM read_csv('CITY/events.csv', types={'imei': 'VARCHAR'}) WHERE kind = 'imei_change'",
    }
    for name, sql in queries.items():
        one, many = (sql.replace("CITY", str(folder)) for folder in (small_city, blocks))
        assert q(f"SELECT count(*), count(DISTINCT x) FROM ({one}) x") == q(f"SELECT count(*), count(DISTINCT x) FROM ({many}) x"), name
        assert q(f"SELECT count(*) FROM ({one})")[0][0] > 0, name
        assert q(f"SELECT count(*) FROM (({one}) EXCEPT ({many}))")[0][0] == 0, name
    assert q(f"SELECT count(DISTINCT msisdn) FROM read_csv('{blocks}/stays.csv')") == q(
        f"SELECT count(DISTINCT msisdn) FROM read_csv('{small_city}/stays.csv')")
    overlapping = q(f"""SELECT count(*) FROM (
        SELECT start_time, lag(end_time) OVER (PARTITION BY msisdn ORDER BY start_time) AS previous_end
        FROM read_csv('{blocks}/stays.csv')) WHERE start_time < previous_end""")[0][0]
    assert overlapping == 0
    assert digest(blocks)["subscribers.csv"] == digest(small_city)["subscribers.csv"]
