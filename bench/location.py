"""The location stage against a bare DuckDB group-by of the same stays.

    python bench/location.py [--subscribers 1000000] [--days 7] [--city FOLDER]

Goal (issue 5): location inference for 1 M subscribers x 7 days of stays at most 3x a bare DuckDB
group-by of the same stays (per subscriber and cell: the stays and their seconds, written to Parquet as
the stages write), measured in this run. The stage runs through the real task path (`start_snapshot_run`,
which prepares it, then `compute_partition` per partition, in-process), alone: the other stages are
taken out of the registry for the run.
"""

import shutil
from datetime import date

from _setup import Timer, city_arguments, city_folder, django_in_scratch, ingest_city

DATASETS = ["regions", "products", "cells", "subscribers", "stays"]


def main() -> None:
    parser = city_arguments()
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    scratch = django_in_scratch("bench-location-")

    from django.db.models import Sum

    from microarea.services.coverage import cell_coverage
    from tagging import stages, tasks
    from tagging.lake import store
    from tagging.models import IngestBatch, SnapshotPartition
    from tagging.services import snapshots

    ingest_city(city_folder(args, scratch, date(2026, 10, 31)), DATASETS)
    stays = [b.lake_path for b in IngestBatch.objects.accepted().filter(dataset="stays")]
    rows = IngestBatch.objects.accepted().filter(dataset="stays").aggregate(n=Sum("rows_accepted"))["n"]
    # The simulated days (the last night's stays run into the next morning, past the end date).
    as_of, days = date(2026, 10, 31), args.days
    tasks.compute_partition_task.delay = lambda partition_id: None  # partitions are run here, one by one
    for name in [n for n in stages.STAGES if n != "location"]:
        del stages.STAGES[name]
    # The cells' coverage footprints are made once per set of cell batches; made here, before timing,
    # as a lake that has run before has them.
    cell_coverage()

    bare, ours = [], []
    for attempt in range(args.repeat):
        con = store.connect()
        target = scratch / f"bare-{attempt}.parquet"
        with Timer() as timer:
            con.execute(
                f"COPY (SELECT subscriber_id, cell_key, count(*) AS stays, "
                f"sum(epoch(end_time) - epoch(start_time)) AS seconds "
                f"FROM read_parquet({store.files_sql(stays)}) GROUP BY subscriber_id, cell_key) "
                f"TO '{target}' (FORMAT parquet, COMPRESSION {stages.STAGE_COMPRESSION})"
            )
        bare.append(timer.seconds)
        con.close()
        with Timer() as timer:
            run = snapshots.start_snapshot_run(as_of=as_of, window_days=days)  # pins batches, prepares the stage
            for partition in run.partitions.filter(stage="location").order_by("index"):
                snapshots.compute_partition(partition_id=partition.id)
        ours.append(timer.seconds)
        done = run.partitions.filter(stage="location", status=SnapshotPartition.Status.DONE).count()
        assert done == run.partition_count, "a location partition did not finish"
        summary = [p.summary for p in run.partitions.filter(stage="location")]
    print(f"\n{args.subscribers:,} subscribers, {rows:,} stays over {days} days, {run.partition_count} partitions; "
          f"{sum(s['homes_known'] for s in summary):,} homes and {sum(s['works_known'] for s in summary):,} workplaces known")
    print(f"  bare DuckDB group-by of the stays:     {min(bare):.2f}s (runs: {', '.join(f'{s:.2f}' for s in bare)})")
    print(f"  location stage (prepare + partitions): {min(ours):.2f}s (runs: {', '.join(f'{s:.2f}' for s in ours)})")
    print(f"  ratio: {min(ours) / min(bare):.2f}x (goal: at most 3x)", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
