"""Snapshot runs: start, compute partitions stage by stage, publish atomically, or fail safely."""

from __future__ import annotations

import logging
import uuid
from datetime import date, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Min, Q, Sum
from django.utils import timezone

from ..lake import store
from ..lake.schemas import DATASETS, Kind
from ..models import IngestBatch, Snapshot, SnapshotPartition, SnapshotRun
from ..stages import STAGES, PartitionWork, ordered_stages

logger = logging.getLogger("tagging.snapshots")


class SnapshotRefused(ValueError):
    """A run that cannot start: say why, change nothing."""


class RunInProgress(SnapshotRefused):
    """Another run is active: one at a time."""


class StageFailed(RuntimeError):
    """A failure that retrying cannot fix (a rule that fails on the data): the run fails at once."""


CHURN_WINDOW_BOUNDS = (7, 180)  # a week (shorter sees too few leavers) to half a year
MAX_WINDOW_DAYS = 366  # a year; the location stage packs a window's days into 10 bits of its keys


def start_snapshot_run(*, as_of: date, user=None, partition_size: int | None = None,
                       window_days: int | None = None, churn_window_days: int | None = None) -> SnapshotRun:
    """Pin the lake batches the run will read, create its first stage's partitions and enqueue them.

    `churn_window_days` (CHURN_WINDOW_DAYS when not given): the churn model learns who left in this many days after
    a snapshot that long before the as-of date. Asked for explicitly, it must fit in the usage data the lake holds."""
    from ..tasks import compute_partition_task

    partition_size = partition_size or settings.SNAPSHOT_PARTITION_SIZE
    window_days = window_days or settings.SNAPSHOT_WINDOW_DAYS
    if as_of > timezone.localdate():
        raise SnapshotRefused(f"as-of date {as_of} is in the future")
    if partition_size < 1 or window_days < 1:
        raise SnapshotRefused("partition size and window must be positive")
    if window_days > MAX_WINDOW_DAYS:
        raise SnapshotRefused(f"a window of {window_days} days: at most {MAX_WINDOW_DAYS}")
    if churn_window_days is not None:
        _check_churn_window(as_of, churn_window_days)
    _refuse_if_active()
    # Facts are read over the window and the one before it (usage trends compare the two); handset
    # sightings over the retained handset history.
    lookback = (as_of - timedelta(days=2 * window_days - 1), as_of)
    history = (min(lookback[0], as_of - timedelta(days=settings.TERMINAL_HISTORY_DAYS - 1)), as_of)
    pinned: dict[str, list[int]] = {}
    for name, spec in DATASETS.items():
        # Contact results are learnt from whenever they were reported (the response models): all of them to the date.
        period = (None if name == "contact_results" else history if name in ("imei_observations", "events") else lookback) \
            if spec.kind == Kind.FACT else None
        batches = store.accepted_batches(name, period=period)
        # Rows describing days after the as-of date are not part of this snapshot.
        batches = batches.filter(Q(period_start__isnull=True) | Q(period_start__lte=as_of))
        pinned[name] = list(batches.values_list("id", flat=True))
    if not pinned["subscribers"]:
        raise SnapshotRefused("no subscribers in the lake yet: ingest the subscribers file first")
    con = store.connect()
    try:
        paths = pinned_paths(pinned)
        max_id = con.execute(
            f"SELECT max(subscriber_id) FROM {store.read_sql('subscribers', paths['subscribers'], columns='subscriber_id, _batch')}"
        ).fetchone()[0]
    finally:
        con.close()
    first = ordered_stages()[0]
    with transaction.atomic():
        try:
            with transaction.atomic():  # the constraint one_running_snapshot_run refuses a second active run
                run = SnapshotRun.objects.create(
                    as_of_date=as_of, status=SnapshotRun.Status.RUNNING, stage=first.name, window_days=window_days,
                    partition_size=partition_size, partition_count=(max_id + partition_size - 1) // partition_size,
                    max_subscriber_id=max_id, lake_batches=pinned, started_at=timezone.now(),
                    definitions={"churn_window_days": churn_window_days or settings.CHURN_WINDOW_DAYS},
                    created_by=user if user and user.is_authenticated else None,
                )
        except IntegrityError:
            _refuse_if_active()
            raise
        _prepare_stage(run, first)
        partitions = _create_partitions(run, first.name)
        logger.info("run #%s as of %s: %s partitions of %s subscriber ids", run.id, as_of, run.partition_count, partition_size)
        transaction.on_commit(lambda: [compute_partition_task.delay(p.id) for p in partitions])
    return run


def _check_churn_window(as_of: date, days: int) -> None:
    low, high = CHURN_WINDOW_BOUNDS
    if not low <= days <= high:
        raise SnapshotRefused(f"a churn window of {days} days: between {low} and {high}")
    first = store.accepted_batches("usage_daily").aggregate(day=Min("period_start"))["day"]
    if first is None or (as_of - first).days < days:
        held = f"start on {first}, {(as_of - first).days} days before {as_of}" if first else "are not in the lake yet"
        raise SnapshotRefused(f"a churn window of {days} days is longer than the data: the usage data {held}, and the "
                              f"churn model learns from a snapshot {days} days before {as_of}")


def _refuse_if_active() -> None:
    active = SnapshotRun.objects.active().first()
    if active:
        raise RunInProgress(f"run #{active.id} (as of {active.as_of_date}) is still running (stage {active.stage}); "
                            "wait for it or cancel it")


def cancel_run(*, run_id: int, user=None) -> SnapshotRun:
    """Stop a running run: nothing more is dispatched (claims and advances need a running run), partitions
    computing now finish into nothing, and the snapshot that was current stays current."""
    who = f" by {user}" if user is not None and user.is_authenticated else ""
    cancelled = SnapshotRun.objects.filter(id=run_id, status=SnapshotRun.Status.RUNNING).update(
        status=SnapshotRun.Status.CANCELLED, error=f"cancelled{who} at {timezone.localtime():%Y-%m-%d %H:%M}",
        finished_at=timezone.now())
    run = SnapshotRun.objects.get(id=run_id)
    if not cancelled:
        raise SnapshotRefused(f"run #{run.id} is {run.status}: only a running run can be cancelled")
    SnapshotPartition.objects.filter(run_id=run_id).exclude(status=SnapshotPartition.Status.DONE).update(
        status=SnapshotPartition.Status.FAILED, error="run cancelled", claim="")
    logger.warning("run #%s cancelled%s", run_id, who)
    return run


def pinned_paths(pinned: dict[str, list[int]]) -> dict[str, list[str]]:
    """The lake files of pinned batch ids, by dataset (a run's `lake_batches`)."""
    lake_paths = dict(IngestBatch.objects.filter(id__in=[i for ids in pinned.values() for i in ids]).values_list("id", "lake_path"))
    return {name: [lake_paths[i] for i in ids] for name, ids in pinned.items()}


def _create_partitions(run: SnapshotRun, stage: str) -> list[SnapshotPartition]:
    SnapshotPartition.objects.bulk_create(
        [
            # Dense ids start at 1.
            SnapshotPartition(run=run, stage=stage, index=i, id_from=1 + i * run.partition_size,
                              id_to=1 + (i + 1) * run.partition_size)
            for i in range(run.partition_count)
        ],
        ignore_conflicts=True,  # idempotent: a repeated advance finds the partitions already there
    )
    return list(SnapshotPartition.objects.filter(run=run, stage=stage))


def compute_partition(*, partition_id: int) -> None:
    """Claim one (run, stage, partition), compute it, and move the run on when the stage is complete.

    The claim is a conditional update, so a duplicate delivery of the same task finds nothing to do;
    a partition whose worker died (claimed longer ago than the lease) can be claimed again. The claim
    records a lease token and the result is written only under it, so a worker that outlived its lease
    (another worker has the partition now) changes nothing.
    """
    lease = timezone.now() - timedelta(seconds=settings.SNAPSHOT_PARTITION_LEASE_SECONDS)
    claimable = Q(status__in=[SnapshotPartition.Status.PENDING, SnapshotPartition.Status.FAILED]) | Q(
        status=SnapshotPartition.Status.RUNNING, claimed_at__lt=lease
    )
    token = uuid.uuid4().hex
    claimed = SnapshotPartition.objects.filter(claimable, id=partition_id, run__status=SnapshotRun.Status.RUNNING).update(
        status=SnapshotPartition.Status.RUNNING, claimed_at=timezone.now(), attempts=F("attempts") + 1, error="", claim=token
    )
    if not claimed:
        # A redelivered task of a finished partition: make sure the run moved on, in case the worker
        # that finished it died between recording it and advancing the run.
        finished = SnapshotPartition.objects.filter(id=partition_id, status=SnapshotPartition.Status.DONE).first()
        if finished:
            advance_run(run_id=finished.run_id, stage=finished.stage)
        return
    partition = SnapshotPartition.objects.select_related("run").get(id=partition_id)
    run = partition.run
    work = PartitionWork(
        run_id=run.id, index=partition.index, as_of=run.as_of_date, window_days=run.window_days,
        id_from=partition.id_from, id_to=partition.id_to, lake_files=pinned_paths(run.lake_batches),
        definitions=run.definitions,
    )
    con = store.connect()
    held = SnapshotPartition.objects.filter(id=partition_id, claim=token, status=SnapshotPartition.Status.RUNNING)
    try:
        summary = STAGES[partition.stage].compute(con, work, work.output_path(partition.stage, partition.index))
    except Exception as exc:
        if not held.update(status=SnapshotPartition.Status.FAILED, error=str(exc)[:4000]):
            logger.warning("run #%s %s partition %s: lease lost before it failed; its new holder decides", run.id,
                           partition.stage, partition.index)
            return
        raise
    finally:
        con.close()
    if not held.update(status=SnapshotPartition.Status.DONE, rows=summary.get("subscribers", 0), summary=summary,
                       finished_at=timezone.now()):
        logger.warning("run #%s %s partition %s: lease lost before it finished; its new holder writes the result",
                       run.id, partition.stage, partition.index)
        return
    logger.info("run #%s %s partition %s/%s done: %s", run.id, partition.stage, partition.index + 1, run.partition_count, summary)
    advance_run(run_id=run.id, stage=partition.stage)


def advance_run(*, run_id: int, stage: str) -> None:
    """When every partition of `stage` is done, start the next stage, or publish after the last one."""
    from ..tasks import compute_partition_task

    if SnapshotPartition.objects.filter(run_id=run_id, stage=stage).exclude(status=SnapshotPartition.Status.DONE).exists():
        return
    names = [s.name for s in ordered_stages()]
    following = names[names.index(stage) + 1] if names.index(stage) + 1 < len(names) else None
    try:
        with transaction.atomic():
            # Whoever finishes the stage's last partition moves the run on; a racing second finisher
            # finds the stage already changed and does nothing.
            moved = SnapshotRun.objects.filter(id=run_id, stage=stage, status=SnapshotRun.Status.RUNNING).update(
                stage=following or "publish"
            )
            if not moved:
                return
            run = SnapshotRun.objects.get(id=run_id)
            if following is None:
                publish_snapshot(run=run)
                return
            _prepare_stage(run, STAGES[following])
            partitions = _create_partitions(run, following)
            transaction.on_commit(lambda: [compute_partition_task.delay(p.id) for p in partitions])
    except StageFailed as exc:
        fail_run(run_id=run_id, error=f"{following or 'publish'}: {exc}")


def _prepare_stage(run: SnapshotRun, stage) -> None:
    if stage.prepare is None:
        return
    run.definitions = {**run.definitions, **stage.prepare(run)}
    run.save(update_fields=["definitions"])


@transaction.atomic
def publish_snapshot(*, run: SnapshotRun) -> Snapshot:
    """Make the run's snapshot current; refuse if any partition is unfinished."""
    unfinished = run.partitions.exclude(status=SnapshotPartition.Status.DONE).count()
    if unfinished or not run.partitions.exists():
        raise SnapshotRefused(f"run #{run.id} has {unfinished} unfinished partitions")
    first = ordered_stages()[0].name
    summary: dict[str, dict] = {}
    for stage, partition_summary in run.partitions.values_list("stage", "summary"):
        totals = summary.setdefault(stage, {})
        for key, value in partition_summary.items():
            if isinstance(value, (int, float)):
                totals[key] = round(totals.get(key, 0) + value, 2)
    subscribers = run.partitions.filter(stage=first).aggregate(n=Sum("rows"))["n"] or 0
    # Current means latest: a backfill (an earlier as-of date than a published snapshot) becomes history.
    current = not Snapshot.objects.filter(as_of_date__gt=run.as_of_date).exists()
    if current:
        Snapshot.objects.filter(is_current=True).update(is_current=False)
    snapshot = Snapshot.objects.create(
        run=run, as_of_date=run.as_of_date, is_current=current, subscriber_count=subscribers, summary=summary
    )
    for stage in ordered_stages():
        if stage.publish:
            summary.setdefault(stage.name, {}).update(stage.publish(run, snapshot))
    snapshot.save(update_fields=["summary"])
    run.status, run.stage, run.finished_at = SnapshotRun.Status.SUCCEEDED, "", timezone.now()
    run.save(update_fields=["status", "stage", "finished_at"])
    logger.info("run #%s published: snapshot as of %s with %s subscribers%s", run.id, run.as_of_date, subscribers,
                "" if current else " (history: a later snapshot stays current)")
    return snapshot


def fail_run(*, run_id: int, error: str) -> None:
    """Give up on a run; the snapshot that was current stays current."""
    SnapshotRun.objects.filter(id=run_id, status=SnapshotRun.Status.RUNNING).update(
        status=SnapshotRun.Status.FAILED, error=error[:4000], finished_at=timezone.now()
    )
    logger.error("run #%s failed: %s", run_id, error)


def fail_run_of_partition(*, partition_id: int, error: str) -> None:
    partition = SnapshotPartition.objects.get(id=partition_id)
    fail_run(run_id=partition.run_id, error=f"{partition.stage} partition {partition.index}: {error}")


def resume_stalled_runs() -> int:
    """Re-send the work of runs that stopped moving (a worker killed mid-partition, messages lost with it).

    A run is stalled when none of its partitions was claimed or finished within the lease. Every unfinished
    partition of its stage is sent again; duplicates are harmless, the claim lets one through. Returns how
    many partitions were sent. Celery beat calls this every minute; `manage.py resume_runs` by hand.
    """
    from ..tasks import compute_partition_task

    lease = timezone.now() - timedelta(seconds=settings.SNAPSHOT_PARTITION_LEASE_SECONDS)
    sent = 0
    for run in SnapshotRun.objects.filter(status=SnapshotRun.Status.RUNNING, started_at__lt=lease):
        if run.partitions.filter(Q(claimed_at__gte=lease) | Q(finished_at__gte=lease)).exists():
            continue
        stage = run.stage if run.stage in STAGES else ordered_stages()[-1].name
        unfinished = list(run.partitions.filter(stage=stage).exclude(status=SnapshotPartition.Status.DONE).values_list("id", flat=True))
        if not unfinished:
            # Every partition finished but the run did not move on: the worker died advancing it.
            SnapshotRun.objects.filter(id=run.id, stage="publish").update(stage=stage)
            advance_run(run_id=run.id, stage=stage)
            continue
        logger.warning("run #%s stalled in %s: sending %s partitions again", run.id, stage, len(unfinished))
        for partition_id in unfinished:
            compute_partition_task.delay(partition_id)
        sent += len(unfinished)
    return sent
