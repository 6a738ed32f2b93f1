"""The behaviour stages (app usage; call circles with households) against bare DuckDB group-bys of the same files.

    python bench/behaviour.py [--subscribers 1000000] [--days 7] [--city FOLDER]

Goals (issue 19), each against a reference measured in this run:
- the app-usage stage for 1 M subscribers x 7 days: at most 2x a bare group-by of app_usage_daily by (subscriber,
  category), written to Parquet as the stages write;
- the circle stage (peers, shares, circle product shares: the circles stage; centrality and households: the call
  graph stage): at most 4x a bare
  group-by of call_records by (subscriber, peer) (the lake's form of (caller, callee)), written to Parquet.

The run is driven through the real task path, partition by partition in this process (as one worker would), every
stage's prepare and partitions timed; the stages before these (terminals, location, features) run but are not
counted.
"""

import dataclasses
import shutil
import time
from collections import defaultdict
from datetime import date

from _setup import Timer, city_arguments, city_folder, django_in_scratch, ingest_city


def main() -> None:
    parser = city_arguments()
    parser.add_argument("--partition-size", type=int, default=250_000)
    args = parser.parse_args()
    scratch = django_in_scratch("bench-behaviour-")

    from tagging import tasks
    from tagging.lake import store
    from tagging.lake.schemas import INGEST_ORDER
    from tagging.models import IngestBatch, SnapshotRun
    from tagging.services import snapshots
    from tagging.stages import STAGE_COMPRESSION, STAGES

    ingest_city(city_folder(args, scratch, date(2026, 10, 31)), INGEST_ORDER)
    files = {name: [b.lake_path for b in IngestBatch.objects.accepted().filter(dataset=name)]
             for name in ("app_usage_daily", "app_catalogue", "call_records")}
    rows = {name: sum(IngestBatch.objects.accepted().filter(dataset=name).values_list("rows_accepted", flat=True))
            for name in files}

    con = store.connect()
    bare = {}
    with Timer() as timer:
        con.execute(
            f"COPY (SELECT u.subscriber_id, c.category, count(*) AS days, sum(u.seconds) AS seconds, "
            f"sum(u.bytes_up + u.bytes_down) AS bytes FROM read_parquet({store.files_sql(files['app_usage_daily'])}) u "
            f"JOIN {store.read_sql('app_catalogue', files['app_catalogue'])} c USING (app_id) GROUP BY u.subscriber_id, c.category) "
            f"TO '{scratch / 'bare-apps.parquet'}' (FORMAT parquet, COMPRESSION {STAGE_COMPRESSION})")
    bare["apps"] = timer.seconds
    with Timer() as timer:
        con.execute(
            f"COPY (SELECT subscriber_id, peer, count(*) AS contacts, sum(seconds) AS seconds "
            f"FROM read_parquet({store.files_sql(files['call_records'])}) GROUP BY subscriber_id, peer) "
            f"TO '{scratch / 'bare-calls.parquet'}' (FORMAT parquet, COMPRESSION {STAGE_COMPRESSION})")
    bare["circles"] = timer.seconds
    con.close()

    # Every stage's prepare and partitions, timed where they run.
    spent: dict[str, float] = defaultdict(float)

    def timed(name, function):
        def run(*a, **k):
            started = time.perf_counter()
            try:
                return function(*a, **k)
            finally:
                spent[name] += time.perf_counter() - started
        return run

    for name, stage in list(STAGES.items()):
        STAGES[name] = dataclasses.replace(stage, compute=timed(name, stage.compute),
                                           prepare=timed(name, stage.prepare) if stage.prepare else None)
    tasks.compute_partition_task.delay = lambda partition_id: None  # partitions are run here, in order
    as_of = max(b.period_end for b in IngestBatch.objects.accepted().filter(dataset="call_records"))
    run = snapshots.start_snapshot_run(as_of=as_of, window_days=args.days, partition_size=args.partition_size)
    while True:
        run.refresh_from_db()
        pending = list(run.partitions.filter(stage=run.stage, status="pending").order_by("index"))
        if run.status != SnapshotRun.Status.RUNNING or not pending:
            break
        for partition in pending:
            snapshots.compute_partition(partition_id=partition.id)
    run.refresh_from_db()
    assert run.status == SnapshotRun.Status.SUCCEEDED, run.error

    circle_stage = spent["circles"] + spent["call_graph"]
    print(f"\n{args.subscribers:,} subscribers x {args.days} days: {rows['app_usage_daily']:,} app-usage rows, "
          f"{rows['call_records']:,} call records; {run.partition_count} partitions")
    print(f"  bare group-by of app usage by (subscriber, category):  {bare['apps']:.2f}s")
    print(f"  app-usage stage:                                      {spent['apps']:.2f}s")
    print(f"  ratio: {spent['apps'] / bare['apps']:.2f}x (goal: at most 2x)")
    print(f"  bare group-by of call records by (subscriber, peer):   {bare['circles']:.2f}s")
    print(f"  circles stage {spent['circles']:.2f}s + call graph (centrality, households) {spent['call_graph']:.2f}s = {circle_stage:.2f}s")
    print(f"  ratio: {circle_stage / bare['circles']:.2f}x (goal: at most 4x)")
    print("  (every stage, prepare and partitions: " + ", ".join(f"{k} {v:.1f}s" for k, v in spent.items()) + ")", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
