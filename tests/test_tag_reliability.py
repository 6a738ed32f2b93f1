"""A worker SIGKILLed in the middle of a tag stage: the run still completes, exactly as a clean run would."""

import time

import pytest
from django.db.models import Sum
from pyroaring import BitMap

from tagging.models import Snapshot, SnapshotPartition, SnapshotRun, TagSnapshot
from tagging.services.snapshots import resume_stalled_runs, start_snapshot_run
from tagging.services.tags import install_starting_catalogue

from .conftest import SERVICES, SMALL_CITY, ingest_city

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not SERVICES, reason="needs a real Celery worker to kill: runs in `make test-services`"),
]
# Seconds; short, so that the test need not wait half an hour for the killed worker's claim to lapse, and long
# enough for a partition of 50 subscribers to finish within the task's time limit (90% of it).
LEASE = 10


def _start():
    return start_snapshot_run(as_of=SMALL_CITY.end_date, window_days=SMALL_CITY.days, partition_size=50)


def _bitmaps(snapshot: Snapshot) -> dict[str, BitMap]:
    return {code: BitMap.deserialize(bytes(blob)) for code, blob in
            TagSnapshot.objects.filter(snapshot=snapshot).values_list("tag__code", "bitmap")}


def test_a_worker_killed_mid_tag_stage_the_run_completes_as_a_clean_run_would(
        small_city, celery_worker_process, run_to_end, settings):
    worker = celery_worker_process
    ingest_city(small_city)
    install_starting_catalogue()
    run = _start()
    try:
        deadline = time.monotonic() + 120
        while not run.partitions.filter(stage="tags", status=SnapshotPartition.Status.RUNNING).exists():
            assert time.monotonic() < deadline, "the tag stage never started"
            time.sleep(0.005)
        worker.kill()
        at_kill = dict(run.partitions.filter(stage="tags").values_list("index", "status"))
        assert SnapshotPartition.Status.RUNNING in at_kill.values(), "the kill must land inside the tag stage"
        assert set(at_kill.values()) != {SnapshotPartition.Status.DONE}
        run.refresh_from_db()
        assert run.status == SnapshotRun.Status.RUNNING and not Snapshot.objects.filter(run=run).exists()

        # The worker comes back (with a short lease for the test); beat notices the stalled run.
        worker.start(SNAPSHOT_PARTITION_LEASE_SECONDS=str(LEASE))
        settings.SNAPSHOT_PARTITION_LEASE_SECONDS = LEASE
        resent = 0
        while run.status == SnapshotRun.Status.RUNNING:
            assert time.monotonic() < deadline + 120, list(run.partitions.values("stage", "index", "status"))
            resent += resume_stalled_runs()
            time.sleep(0.5)
            run.refresh_from_db()
        assert run.status == SnapshotRun.Status.SUCCEEDED, run.error
        assert resent >= 1
        recovered = Snapshot.objects.get(run=run)
        killed = [i for i, s in at_kill.items() if s == SnapshotPartition.Status.RUNNING]
        assert all(a >= 2 for a in run.partitions.filter(stage="tags", index__in=killed).values_list("attempts", flat=True))

        # Nothing counted twice: every partition's rows once, every subscriber in exactly one district.
        tags_rows = run.partitions.filter(stage="tags").aggregate(n=Sum("rows"))["n"]
        assert tags_rows == recovered.subscriber_count == SMALL_CITY.subscribers
        assert sum(recovered.regions.values_list("subscriber_count", flat=True)) == SMALL_CITY.subscribers

        clean = run_to_end(_start())
        assert clean.status == SnapshotRun.Status.SUCCEEDED, clean.error
        recovered_bitmaps, clean_bitmaps = _bitmaps(recovered), _bitmaps(Snapshot.objects.get(run=clean))
        assert recovered_bitmaps.keys() == clean_bitmaps.keys() and len(recovered_bitmaps) >= 38
        for code, bitmap in clean_bitmaps.items():
            assert recovered_bitmaps[code] == bitmap, code
    finally:
        worker.kill()
        worker.start()  # the normal worker again, for the rest of the session
