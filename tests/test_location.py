"""Location inference against the simulator's truth: home and work cells, unknowns, movers."""

from collections import Counter
from datetime import date, timedelta

import duckdb
import h3
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


@pytest.mark.django_db
def test_hours_count_once_nights_go_to_their_evening_and_office_hours_to_weekdays(small_city, tmp_path):
    """Hand-made stays for one subscriber over the week Sunday 25 to Saturday 31 October (Asia/Shanghai)."""
    from microarea.services.coverage import cell_coverage
    from microarea.stages.location import compute_location
    from tagging.models import IngestBatch, Subscriber
    from tagging.services.ingest import ingest_file
    from tagging.stages import PartitionWork

    ingest_city(small_city, ["regions", "products", "cells", "subscribers"])
    home, office, other = (r[0] for r in duckdb.connect().sql(
        f"SELECT radio||'-'||mcc||'-'||net||'-'||area||'-'||cell FROM read_csv('{small_city}/cells.csv') LIMIT 3").fetchall())
    subscriber = Subscriber.objects.order_by("id").first()
    stays = [
        (other, "2026-10-24T20:00", "2026-10-25T02:00"),  # before the window; 00-02 on the 25th: the night of the 24th
        (home, "2026-10-25T22:00", "2026-10-26T07:00"),   # night of the 25th: 22-06, 9 hours
        (home, "2026-10-26T21:30", "2026-10-27T06:30"),   # night of the 26th: 21-06, 10 hours
        (home, "2026-10-27T23:00", "2026-10-28T01:00"),   # night of the 27th: 23 and 00
        (home, "2026-10-27T23:10", "2026-10-27T23:50"),   # the same hour again: counted once
        (office, "2026-10-26T09:00", "2026-10-26T12:00"),  # Monday: 3 office hours
        (office, "2026-10-27T09:00", "2026-10-27T18:00"),  # Tuesday: 9
        (office, "2026-10-28T13:00", "2026-10-28T14:00"),  # Wednesday: 1
        (office, "2026-10-31T10:00", "2026-10-31T16:00"),  # Saturday: hours, but not office hours
        (other, "2026-10-29T21:00", "2026-10-29T22:00"),   # night of the 29th: 1 hour
        # Working from home on three weekdays, longer than at the office: work is still the office, and
        # office hours at home count in no workplace's share.
        (home, "2026-10-26T13:00", "2026-10-26T18:00"),    # Monday: 5
        (home, "2026-10-29T09:00", "2026-10-29T18:00"),    # Thursday: 9
        (home, "2026-10-30T09:00", "2026-10-30T18:00"),    # Friday: 9
        (other, "2026-10-28T15:00", "2026-10-28T16:00"),   # Wednesday: 1 office hour elsewhere
    ]
    text = "msisdn,cell_key,start_time,end_time\n" + "".join(
        f"{subscriber.msisdn},{cell},{start}:00+08:00,{end}:00+08:00\n" for cell, start, end in stays)
    (tmp_path / "stays.csv").write_text(text)
    batch = ingest_file(dataset="stays", path=tmp_path / "stays.csv")
    assert batch.status == IngestBatch.Status.ACCEPTED, batch.errors
    files = {d: [b.lake_path for b in IngestBatch.objects.accepted().filter(dataset=d)] for d in ["cells", "subscribers", "stays"]}
    work = PartitionWork(run_id=1, index=0, as_of=date(2026, 10, 31), window_days=7,
                         id_from=subscriber.id, id_to=subscriber.id + 1, lake_files=files,
                         definitions={"location": {"coverage": str(cell_coverage())}})
    target = tmp_path / "location.parquet"
    compute_location(store.connect(), work, target)
    relation = duckdb.connect().sql(f"SELECT * FROM read_parquet('{target}')")
    located = dict(zip(relation.columns, relation.fetchall()[0]))
    assert (located["home_cell"], located["home_days"]) == (home, 3)
    assert located["home_confidence"] == pytest.approx(21 / (21 + 3))  # 3 night hours elsewhere (the 24th and 29th)
    assert (located["work_cell"], located["work_days"]) == (office, 3)
    assert located["work_confidence"] == pytest.approx(13 / (13 + 1))
    assert located["location_hours"] == (21 + 23) + 19 + (3 + 1) and located["frequent_cell"] == home
    # Each hex is one the cell serves (the best res-9 hex rebuilt from its res-8 parent), in the res-8 hex
    # holding most of the cell's footprint.
    footprint = duckdb.connect().sql(f"SELECT cell_key, h3 FROM read_parquet('{cell_coverage()}')").fetchall()
    for cell, chosen in ((home, located["home_h3"]), (office, located["work_h3"])):
        served = [h for key, h in footprint if key == cell]
        by_parent = Counter(h3.cell_to_parent(h3.int_to_str(h), 8) for h in served)
        assert chosen in served and by_parent[h3.cell_to_parent(h3.int_to_str(chosen), 8)] == max(by_parent.values())
