"""Snapshot runs: partitions as Celery tasks, atomic publish, history, and failure that changes nothing."""

import datetime
from pathlib import Path

import duckdb
import pytest
from django.core.management import call_command

from tagging.models import IngestBatch, Snapshot, SnapshotPartition, SnapshotRun, Subscriber
from tagging.services import snapshots
from tagging.services.snapshots import SnapshotRefused, start_snapshot_run
from tagging.stages import snapshot_dir

from .conftest import SMALL_CITY, ingest_city

# Transactional: with `make test-services` a real worker process must see what the test committed.
pytestmark = pytest.mark.django_db(transaction=True)
AS_OF = SMALL_CITY.end_date


def test_end_to_end_simulate_ingest_snapshot_publish(small_city, run_to_end):
    ingest_city(small_city)
    run = run_to_end(start_snapshot_run(as_of=AS_OF, partition_size=250))
    assert run.status == SnapshotRun.Status.SUCCEEDED, run.error
    snapshot = Snapshot.objects.current()
    assert snapshot.run == run
    assert snapshot.subscriber_count == SMALL_CITY.subscribers == Subscriber.objects.count()
    assert run.partition_count == 5
    assert set(run.partitions.values_list("status", flat=True)) == {SnapshotPartition.Status.DONE}

    # The stage's output agrees with the raw usage file it was computed from.
    totals = duckdb.execute(f"SELECT sum(voice_calls_total), sum(sms_total), count(*) FROM read_parquet('{snapshot_dir(run.id)}/features/*.parquet')").fetchall()[0]
    raw = duckdb.execute(f"SELECT sum(voice_calls), sum(sms) FROM read_csv('{small_city}/usage_daily.csv')").fetchall()[0]
    assert totals[:2] == raw and totals[2] == SMALL_CITY.subscribers
    assert snapshot.summary["features"]["subscribers"] == SMALL_CITY.subscribers


def test_a_failed_run_keeps_the_previous_snapshot_current(small_city, run_to_end):
    ingest_city(small_city)
    first = run_to_end(start_snapshot_run(as_of=AS_OF, partition_size=400))
    assert first.status == SnapshotRun.Status.SUCCEEDED
    # Damage the lake file the next run must read: every attempt at its partitions fails.
    usage = IngestBatch.objects.get(dataset="usage_daily")
    Path(usage.lake_path).write_bytes(b"not parquet")
    failed = run_to_end(start_snapshot_run(as_of=AS_OF, partition_size=400))
    assert failed.status == SnapshotRun.Status.FAILED
    assert "features partition" in failed.error
    assert Snapshot.objects.current().run == first
    assert not Snapshot.objects.filter(run=failed).exists()
    assert failed.partitions.filter(status=SnapshotPartition.Status.FAILED).exists()
    assert failed.partitions.filter(status=SnapshotPartition.Status.FAILED).first().attempts == 4  # 1 + 3 retries


def test_history_two_runs_one_current(small_city, run_to_end):
    ingest_city(small_city)
    older = run_to_end(start_snapshot_run(as_of=AS_OF - datetime.timedelta(days=7), partition_size=600))
    newer = run_to_end(start_snapshot_run(as_of=AS_OF, partition_size=600))
    assert Snapshot.objects.count() == 2
    assert Snapshot.objects.current().run == newer
    assert Snapshot.objects.get(run=older).is_current is False
    # The older window saw less usage than the newer one over the same subscribers.
    assert Snapshot.objects.get(run=older).subscriber_count == Snapshot.objects.get(run=newer).subscriber_count


def test_a_redelivered_partition_task_changes_nothing(small_city, run_to_end):
    ingest_city(small_city)
    run = run_to_end(start_snapshot_run(as_of=AS_OF, partition_size=600))
    partition = run.partitions.first()
    before = (partition.attempts, partition.summary, partition.finished_at)
    snapshots.compute_partition(partition_id=partition.id)  # the broker delivered it twice
    partition.refresh_from_db()
    assert (partition.attempts, partition.summary, partition.finished_at) == before
    assert Snapshot.objects.filter(run=run).count() == 1


def test_a_partition_whose_worker_died_is_claimed_again(small_city, settings, monkeypatch):
    from tagging import tasks

    ingest_city(small_city)
    monkeypatch.setattr(tasks.compute_partition_task, "delay", lambda partition_id: None)  # no worker picks them up
    run = start_snapshot_run(as_of=AS_OF, partition_size=600)
    dead, alive = run.partitions.order_by("index")
    now = dead.run.created_at
    # One partition was claimed by a worker that died long ago, the other by one still working.
    long_ago = now - datetime.timedelta(seconds=settings.SNAPSHOT_PARTITION_LEASE_SECONDS + 5)
    SnapshotPartition.objects.filter(id=dead.id).update(status=SnapshotPartition.Status.RUNNING, claimed_at=long_ago, attempts=1)
    SnapshotPartition.objects.filter(id=alive.id).update(status=SnapshotPartition.Status.RUNNING, claimed_at=now, attempts=1)
    snapshots.compute_partition(partition_id=dead.id)
    snapshots.compute_partition(partition_id=alive.id)  # a duplicate delivery while the worker still works
    dead.refresh_from_db()
    alive.refresh_from_db()
    assert (dead.status, dead.attempts) == (SnapshotPartition.Status.DONE, 2)
    assert (alive.status, alive.attempts) == (SnapshotPartition.Status.RUNNING, 1)
    run.refresh_from_db()
    assert run.status == SnapshotRun.Status.RUNNING and not Snapshot.objects.exists()
    # The live worker finishes (its lease expires first here), and the run publishes.
    SnapshotPartition.objects.filter(id=alive.id).update(claimed_at=long_ago)
    snapshots.compute_partition(partition_id=alive.id)
    # No worker here: run the later stages by hand, each stage's partitions appearing as the last one ends.
    while pending := run.partitions.exclude(status=SnapshotPartition.Status.DONE).first():
        snapshots.compute_partition(partition_id=pending.id)
    run.refresh_from_db()
    assert run.status == SnapshotRun.Status.SUCCEEDED
    assert Snapshot.objects.current().subscriber_count == SMALL_CITY.subscribers


def test_publish_refuses_an_unfinished_run(small_city, run_to_end):
    ingest_city(small_city)
    run = run_to_end(start_snapshot_run(as_of=AS_OF, partition_size=600))
    SnapshotPartition.objects.filter(run=run).update(status=SnapshotPartition.Status.PENDING)
    with pytest.raises(SnapshotRefused, match="unfinished"):
        snapshots.publish_snapshot(run=run)


def test_refusals_change_nothing(small_city):
    with pytest.raises(SnapshotRefused, match="ingest the subscribers"):
        start_snapshot_run(as_of=AS_OF)
    with pytest.raises(SnapshotRefused, match="future"):
        start_snapshot_run(as_of=datetime.date.today() + datetime.timedelta(days=3))
    with pytest.raises(SnapshotRefused, match="at most 366"):
        start_snapshot_run(as_of=AS_OF, window_days=367)
    assert not SnapshotRun.objects.exists()


def test_run_snapshot_command_reports_progress(small_city, capsys, celery_worker_process):
    ingest_city(small_city)
    call_command("run_snapshot", "--date", AS_OF.isoformat(), "--partition-size", "300")
    out = capsys.readouterr().out
    assert "48/48" in out  # 4 id ranges x 12 stages
    assert f"published snapshot as of {AS_OF}: 1,200 subscribers" in out
