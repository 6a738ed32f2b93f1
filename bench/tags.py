"""The feature and tag stages of a snapshot run against a bare DuckDB aggregation of the same usage files.

    python bench/tags.py [--subscribers 1000000] [--small 100000] [--days 30] [--city FOLDER] [--small-city FOLDER]

Goals (issue 3): for 1 M subscribers x 30 days, the features + tags stages at most 3x the bare
aggregation; and cost growing no worse than linearly: the 1 M run at most 12x the 100 k run.
Everything is measured in this run, on this machine, embedded (tasks run in-process, one partition
after another, DuckDB using every core inside each). The run passes through every stage; the other
stages' partitions and their prepare and publish steps are timed and left out.
"""

import argparse
import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

from _setup import Timer, django_in_scratch, ingest_city


def measure(city: Path, scratch: Path, repeat: int) -> dict:
    from django.db.models import F, Sum

    from tagging.lake import store
    from tagging.models import IngestBatch, Snapshot, SnapshotRun, TagSnapshot
    from tagging.services.snapshots import start_snapshot_run
    from tagging.services.tags import install_starting_catalogue
    from tagging.stages import STAGE_COMPRESSION

    ingest_city(city, ["regions", "products", "subscribers", "subscriptions", "usage_daily"], report=False)
    install_starting_catalogue()
    from microarea.services.coverage import cell_coverage

    cell_coverage()  # made once per set of cell batches (a lake that has run before has it), not timed here
    other_hooks = time_other_stages_hooks()
    usage = [b.lake_path for b in IngestBatch.objects.accepted().filter(dataset="usage_daily")]
    as_of = max(b.period_end for b in IngestBatch.objects.accepted().filter(dataset="usage_daily"))
    bare, ours, stages = [], [], []
    for attempt in range(repeat):
        con = store.connect()
        target = scratch / f"bare-{attempt}.parquet"
        with Timer() as timer:
            con.execute(
                f"COPY (SELECT subscriber_id, count(*) AS days, sum(voice_calls), sum(voice_minutes), sum(onnet_calls), "
                f"sum(offnet_calls), sum(competitor_calls), sum(sms), sum(mms), sum(data_mb), sum(roaming_minutes), "
                f"sum(night_calls), sum(charge_yuan) FROM read_parquet({store.files_sql(usage)}) GROUP BY subscriber_id) "
                f"TO '{target}' (FORMAT parquet, COMPRESSION {STAGE_COMPRESSION})"  # as the stages write
            )
        bare.append(timer.seconds)
        con.close()
        target.unlink()
        other_hooks.clear()
        with Timer() as timer:
            run = start_snapshot_run(as_of=as_of)  # eager: returns when the run has published
        run.refresh_from_db()
        assert run.status == SnapshotRun.Status.SUCCEEDED, run.error
        per_stage = {}
        spans = run.partitions.annotate(span=F("finished_at") - F("claimed_at"))
        for partition in spans:
            per_stage[partition.stage] = per_stage.get(partition.stage, 0) + partition.span.total_seconds()
        # The run also passes through the other stages (terminal and location are empty here: the city
        # has no signalling); their partitions, preparing and publishing are not what this benchmark measures.
        others = sum(seconds for stage, seconds in per_stage.items() if stage not in MEASURED) + sum(other_hooks)
        per_stage = {stage: per_stage[stage] for stage in MEASURED}
        ours.append(timer.seconds - others)
        per_stage["prepare + publish"] = ours[-1] - sum(per_stage.values())
        stages.append(per_stage)
        snapshot = Snapshot.objects.get(run=run)
        tags = TagSnapshot.objects.filter(snapshot=snapshot)
        memberships = tags.aggregate(n=Sum("subscriber_count"))["n"]
    best = min(range(repeat), key=lambda i: ours[i])
    rows = IngestBatch.objects.accepted().filter(dataset="usage_daily").aggregate(n=Sum("rows_accepted"))["n"]
    return {"rows": rows,
            "subscribers": snapshot.subscriber_count, "tags": tags.count(), "memberships": memberships,
            "partitions": run.partition_count, "bare": min(bare), "ours": ours[best], "stages": stages[best],
            "bare_runs": bare, "our_runs": ours}


MEASURED = ("features", "tags")


def time_other_stages_hooks() -> list[float]:
    """Time the prepare and publish steps of every stage but the measured ones; returns where the seconds go."""
    from dataclasses import replace

    from tagging import stages

    spent: list[float] = []

    def timed(step):
        def run_timed(*args):
            with Timer() as timer:
                result = step(*args)
            spent.append(timer.seconds)
            return result
        return step and run_timed

    for name, stage in list(stages.STAGES.items()):
        if name not in MEASURED:
            stages.STAGES[name] = replace(stage, prepare=timed(stage.prepare), publish=timed(stage.publish))
    return spent


def city_of(size: int, days: int, given: Path | None, scratch: Path) -> Path:
    from simulation import CityParameters, simulate_city

    if given:
        return given
    folder = scratch / f"city-{size}"
    print(f"simulating {size:,} subscribers x {days} days ...", flush=True)
    simulate_city(CityParameters(subscribers=size, days=days, end_date=date(2026, 10, 31), signalling=False), folder)
    return folder


def report(result: dict) -> None:
    print(f"\n{result['subscribers']:,} subscribers, {result['rows']:,} usage rows, {result['partitions']} partitions, "
          f"{result['tags']} tags ({result['memberships']:,} memberships)")
    print(f"  bare DuckDB aggregation of the usage files: {result['bare']:.2f}s "
          f"(runs: {', '.join(f'{s:.2f}' for s in result['bare_runs'])})")
    print(f"  features + tags stages, published:         {result['ours']:.2f}s "
          f"(runs: {', '.join(f'{s:.2f}' for s in result['our_runs'])})")
    print("    " + ", ".join(f"{stage} {seconds:.2f}s" for stage, seconds in result["stages"].items()))
    print(f"  ratio: {result['ours'] / result['bare']:.2f}x (goal: at most 3x)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--city", type=Path, help="an already simulated city of --subscribers")
    parser.add_argument("--small-city", type=Path, help="an already simulated city of --small")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", type=int, help=argparse.SUPPRESS)  # one size, in a process of its own
    args = parser.parse_args()

    if args.only:
        scratch = django_in_scratch(f"bench-tags-{args.only}-")
        given = args.city if args.only == args.subscribers else args.small_city
        result = measure(city_of(args.only, args.days, given, scratch), scratch, args.repeat)
        print("RESULT " + json.dumps(result), flush=True)
        shutil.rmtree(scratch, ignore_errors=True)
        return
    results = {}
    for size in [args.small, args.subscribers]:
        # Each size in a fresh process: its own DATA_DIR, database and memory.
        out = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--only", str(size)], capture_output=True,
                             text=True, check=True).stdout
        results[size] = json.loads(next(line for line in out.splitlines() if line.startswith("RESULT "))[7:])
        report(results[size])
    growth = results[args.subscribers]["ours"] / results[args.small]["ours"]
    print(f"\ngrowth {args.small:,} -> {args.subscribers:,} subscribers ({args.subscribers / args.small:.0f}x): "
          f"{growth:.2f}x the time (goal: at most 12x)")


if __name__ == "__main__":
    main()
