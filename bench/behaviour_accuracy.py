"""Accuracy of the behaviour features against the simulator's truth, by class of subscriber (docs/behaviour.md).

    python bench/behaviour_accuracy.py [--subscribers 5000] [--days 30] [--seed 11] [--city FOLDER]

Simulates a city (or takes one), runs the whole pipeline once as of its last day over its days, and prints:
interest tags' precision and recall per category, for unshared and shared phones, tethering or not, by signalling
activity; households' pairwise precision, recall and F1 by household size; the off-net-heavy circle's precision and
recall for subscribers with a line on another network and without. Not a speed benchmark: no ratio.
"""

import argparse
from collections import defaultdict
from datetime import date
from pathlib import Path

from _setup import django_in_scratch, ingest_city


def rates(rows, predicted: int, actual: int) -> str:
    hits = sum(1 for r in rows if r[predicted] and r[actual])
    said, true = sum(1 for r in rows if r[predicted]), sum(1 for r in rows if r[actual])
    precision, recall = hits / max(said, 1), hits / max(true, 1)
    return f"P {precision:.3f} R {recall:.3f} (n {len(rows):,}, {true:,} true)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=5000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--city", type=Path)
    args = parser.parse_args()
    scratch = django_in_scratch("bench-behaviour-accuracy-")

    import duckdb

    from simulation import CityParameters, simulate_city
    from tagging.lake import store
    from tagging.lake.schemas import INGEST_ORDER
    from tagging.models import TagDefinition
    from tagging.services.snapshots import start_snapshot_run
    from tagging.services.tags import install_starting_catalogue
    from tagging.stages import snapshot_dir

    city = args.city or scratch / "city"
    if args.city is None:
        simulate_city(CityParameters(subscribers=args.subscribers, days=args.days, seed=args.seed), city)
    ingest_city(city, INGEST_ORDER, report=False)
    install_starting_catalogue()
    run = start_snapshot_run(as_of=date(2026, 10, 31), window_days=args.days, partition_size=100_000)
    run.refresh_from_db()
    assert run.status == "succeeded", run.error

    def stage(name: str) -> str:
        return f"read_parquet('{snapshot_dir(run.id) / name}/part=*.parquet')"

    con = duckdb.connect()
    con.execute(f"CREATE VIEW who AS SELECT s.subscriber_id, t.*, p.activity FROM {store.current_sql('subscribers')} s "
                f"JOIN read_parquet('{city}/truth/people.parquet') t ON t.msisdn = s.msisdn::VARCHAR "
                f"JOIN read_parquet('{city}/truth/subscribers.parquet') p ON p.msisdn = t.msisdn")
    print(f"\n{args.subscribers:,} subscribers x {args.days} days, seed {args.seed}")

    print("\ninterest tags (subscribers with 5+ days of app traffic)")
    interests = dict(TagDefinition.objects.filter(category="interest").exclude(code="competitor_app_user")
                     .values_list("code", "expression"))
    for code, expression in sorted(interests.items()):
        category = expression.split("_day_share")[0]
        rows = con.execute(f"""
            SELECT coalesce({expression}, false), i.interested, w.shared_phone, w.tethers, w.activity
            FROM {stage('apps')} JOIN who w USING (subscriber_id)
            JOIN read_parquet('{city}/truth/interests.parquet') i ON i.msisdn = w.msisdn AND i.category = '{category}'
            WHERE app_days >= 5""").fetchall()
        classes = defaultdict(list)
        for row in rows:
            classes["own phone" if not row[2] else "shared phone"].append(row)
            if not row[2]:
                classes[f"own, {'tethering' if row[3] else 'no tethering'}"].append(row)
                classes[f"own, {row[4]} activity"].append(row)
        print(f"  {code} ({category})")
        for name in sorted(classes):
            print(f"    {name:24} {rates(classes[name], 0, 1)}")

    print("\nhouseholds (pairs of on-net members whose home was found)")
    con.execute(f"CREATE TABLE members AS SELECT w.subscriber_id, w.home_group, w.flatmates, w.household_onnet_size, h.household_id "
                f"FROM who w JOIN {stage('call_graph')} h USING (subscriber_id) JOIN {stage('location')} l USING (subscriber_id) "
                "WHERE l.home_known")
    truth = {(a, b): size for a, b, size in con.execute(
        "SELECT a.subscriber_id, b.subscriber_id, a.household_onnet_size FROM members a JOIN members b "
        "ON a.home_group = b.home_group AND a.subscriber_id < b.subscriber_id WHERE NOT a.flatmates").fetchall()}
    found = set(con.execute("SELECT a.subscriber_id, b.subscriber_id FROM members a JOIN members b "
                            "ON a.household_id = b.household_id AND a.subscriber_id < b.subscriber_id").fetchall())
    for size in sorted(set(truth.values())) + ["all"]:
        pairs = {p for p, s in truth.items() if size == "all" or s == size}
        hits = len(pairs & found)
        precision = len(truth.keys() & found) / max(len(found), 1)
        recall = hits / max(len(pairs), 1)
        line = f"recall {recall:.3f} of {len(pairs):,} pairs"
        if size == "all":
            line += f"; precision {precision:.3f}, F1 {2 * precision * recall / max(precision + recall, 1e-9):.3f}"
        print(f"  on-net household size {size}: {line}")

    print("\noff-net-heavy circle (close circle's contacts more than half off-net)")
    rows = con.execute(f"SELECT coalesce(c.close_circle_offnet_share > 0.5, false), w.off_net_heavy_circle, w.second_line "
                       f"FROM {stage('circles')} c JOIN who w USING (subscriber_id)").fetchall()
    print(f"  everyone                 {rates(rows, 0, 1)}")
    print(f"  second line elsewhere    {rates([r for r in rows if r[2]], 0, 1)}")
    print(f"  no second line           {rates([r for r in rows if not r[2]], 0, 1)}")


if __name__ == "__main__":
    main()
