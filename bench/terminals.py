"""The terminal stage against a bare DuckDB pass over the same IMEI observations.

    python bench/terminals.py [--subscribers 1000000] [--days 7] [--city FOLDER]

Goal (issue 4): the terminal stage for 1 M subscribers at most 2x a bare DuckDB pass over the same
imei_observations (per subscriber and IMEI: first and last day seen and the rows seen, written to
Parquet as the stages write), measured in this run. The stage runs through the real task path
(`start_snapshot_run`, which prepares it, then `compute_partition` per partition, in-process); the
later stages are not run.
"""

import shutil
from datetime import date

from _setup import Timer, city_arguments, city_folder, django_in_scratch, ingest_city

DATASETS = ["regions", "products", "tac_catalogue", "cells", "subscribers", "events", "imei_observations"]


def main() -> None:
    parser = city_arguments()
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    scratch = django_in_scratch("bench-terminals-")

    from django.db.models import Sum

    from tagging import tasks
    from tagging.lake import store
    from tagging.models import IngestBatch, SnapshotPartition
    from tagging.services import snapshots
    from tagging.stages import STAGE_COMPRESSION

    ingest_city(city_folder(args, scratch, date(2026, 10, 31)), DATASETS)
    observations = [b.lake_path for b in IngestBatch.objects.accepted().filter(dataset="imei_observations")]
    rows = IngestBatch.objects.accepted().filter(dataset="imei_observations").aggregate(n=Sum("rows_accepted"))["n"]
    as_of = max(b.period_end for b in IngestBatch.objects.accepted().filter(dataset="imei_observations"))
    tasks.compute_partition_task.delay = lambda partition_id: None  # partitions are run here, one by one
    from microarea.services.coverage import cell_coverage

    # The location stage's prepare (next after the last terminal partition) makes the cells' coverage
    # once per set of cell batches; made here, before timing, as a lake that has run before has it.
    cell_coverage()

    bare, distinct_days, ours = [], [], []
    for attempt in range(args.repeat):
        con = store.connect()
        target = scratch / f"bare-{attempt}.parquet"
        # The reference: the least a handset snapshot must do. Rows are unique per (subscriber, day, IMEI),
        # so count(*) is the days seen; counting distinct days, as a script would, is shown beside it.
        for days, times in [("count(*)", bare), ("count(DISTINCT date)", distinct_days)]:
            with Timer() as timer:
                con.execute(
                    f"COPY (SELECT subscriber_id, imei, min(date), max(date), {days} "
                    f"FROM read_parquet({store.files_sql(observations)}) GROUP BY subscriber_id, imei) "
                    f"TO '{target}' (FORMAT parquet, COMPRESSION {STAGE_COMPRESSION})"
                )
            times.append(timer.seconds)
        con.close()
        with Timer() as timer:
            run = snapshots.start_snapshot_run(as_of=as_of)  # pins batches, prepares the terminal stage
            for partition in run.partitions.filter(stage="terminals").order_by("index"):
                snapshots.compute_partition(partition_id=partition.id)
        ours.append(timer.seconds)
        done = run.partitions.filter(stage="terminals", status=SnapshotPartition.Status.DONE).count()
        assert done == run.partition_count, "a terminal partition did not finish"
        summary = [p.summary for p in run.partitions.filter(stage="terminals")]
        snapshots.fail_run(run_id=run.id, error="benchmark: only the terminal stage is measured")
    print(f"\n{args.subscribers:,} subscribers, {rows:,} IMEI observations, {run.partition_count} partitions; "
          f"{sum(s['subscribers_with_handset'] for s in summary):,} with a handset, "
          f"{sum(s['knockoffs'] for s in summary):,} knock-offs, {sum(s['handset_changes_12m'] for s in summary):,} changes in 12 months")
    print(f"  bare DuckDB pass over imei_observations: {min(bare):.2f}s (runs: {', '.join(f'{s:.2f}' for s in bare)})")
    print(f"    (the same counting distinct days:      {min(distinct_days):.2f}s, ours {min(ours) / min(distinct_days):.2f}x of it)")
    print(f"  terminal stage (prepare + partitions):   {min(ours):.2f}s (runs: {', '.join(f'{s:.2f}' for s in ours)})")
    print(f"  ratio: {min(ours) / min(bare):.2f}x (goal: at most 2x)", flush=True)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
