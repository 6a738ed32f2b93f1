"""Location inference against the simulator's truth: home and work cells, unknowns, movers."""

from datetime import timedelta

import duckdb
import pytest

from tagging.lake import store
from tagging.services.snapshots import start_snapshot_run
from tagging.stages import snapshot_dir

from .conftest import SMALL_CITY, ingest_city

pytestmark = pytest.mark.django_db(transaction=True)


def located(run, small_city) -> str:
    """The run's location rows joined with the truth, by MSISDN."""
    files = f"read_parquet('{snapshot_dir(run.id) / 'location'}/part=*.parquet')"
    return (f"(SELECT l.*, t.activity, t.works, t.work_cell AS true_work_cell, t.moved, t.move_date, t.final_home_cell "
            f"FROM {files} l "
            f"JOIN {store.current_sql('subscribers')} s USING (subscriber_id) "
            f"JOIN read_parquet('{small_city}/truth/subscribers.parquet') t ON t.msisdn = s.msisdn::VARCHAR)")


@pytest.fixture
def location_run(small_city, run_to_end):
    ingest_city(small_city)
    return run_to_end(start_snapshot_run(as_of=SMALL_CITY.end_date, window_days=SMALL_CITY.days, partition_size=500))


def test_home_and_work_cells_match_the_truth(location_run, small_city):
    rows = located(location_run, small_city)
    con = duckdb.connect()
    known, exact, of = con.sql(f"""
        SELECT avg(home_known::INT), avg((home_cell = final_home_cell)::INT) FILTER (WHERE home_known), count(*)
        FROM {rows} WHERE NOT moved""").fetchall()[0]
    assert of > 1000 and known >= 0.9 and exact >= 0.9, (known, exact)
    work_exact, found, invented = con.sql(f"""
        SELECT avg((work_cell = true_work_cell)::INT) FILTER (WHERE work_known AND works),
               avg(work_known::INT) FILTER (WHERE works), avg(work_known::INT) FILTER (WHERE NOT works)
        FROM {rows}""").fetchall()[0]
    assert work_exact >= 0.9 and found >= 0.85 and invented <= 0.02, (work_exact, found, invented)
    confidence, spread = con.sql(f"SELECT min(home_confidence), max(radius_of_gyration_km) FROM {rows} WHERE home_known").fetchall()[0]
    assert 0 < confidence <= 1 and 0 <= spread < 100


def test_too_little_data_is_unknown_not_guessed(location_run, small_city):
    rows = located(location_run, small_city)
    guessed = duckdb.connect().sql(f"SELECT count(*) FROM {rows} WHERE home_known AND home_days < 3").fetchall()[0][0]
    unknown = duckdb.connect().sql(f"SELECT count(*) FROM {rows} WHERE NOT home_known").fetchall()[0][0]
    assert guessed == 0 and unknown > 0
    assert duckdb.connect().sql(f"SELECT count(*) FROM {rows} WHERE NOT home_known AND home_h3 IS NOT NULL").fetchall()[0][0] == 0


def test_a_mover_is_home_at_the_new_address_once_the_window_is_after_the_move(small_city, run_to_end):
    ingest_city(small_city)
    window = 5
    run = run_to_end(start_snapshot_run(as_of=SMALL_CITY.end_date, window_days=window, partition_size=2000))
    rows = located(run, small_city)
    start = SMALL_CITY.end_date - timedelta(days=window - 1)
    moved_before, at_new_home = duckdb.connect().sql(f"""
        SELECT count(*), count(*) FILTER (WHERE home_cell = final_home_cell)
        FROM {rows} WHERE moved AND move_date < DATE '{start}' AND home_known""").fetchall()[0]
    assert moved_before >= 5 and at_new_home / moved_before >= 0.9, (moved_before, at_new_home)
