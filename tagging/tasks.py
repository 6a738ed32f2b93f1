"""Celery tasks: take ids, call one service. Run state lives in the database, not in Celery."""

from celery import shared_task
from django.conf import settings

from .services import ingest, snapshots

MAX_RETRIES = 3


# Stopped before the partition's lease ends, so that no other worker can claim it while it still runs.
@shared_task(bind=True, acks_late=True, max_retries=MAX_RETRIES, soft_time_limit=settings.SNAPSHOT_PARTITION_SOFT_TIME_LIMIT,
             time_limit=settings.SNAPSHOT_PARTITION_TIME_LIMIT)
def compute_partition_task(self, partition_id: int) -> None:
    try:
        snapshots.compute_partition(partition_id=partition_id)
    except snapshots.StageFailed as exc:
        snapshots.fail_run_of_partition(partition_id=partition_id, error=str(exc))
    except Exception as exc:
        if self.request.retries >= MAX_RETRIES:
            snapshots.fail_run_of_partition(partition_id=partition_id, error=f"{type(exc).__name__}: {exc}")
            return
        # Exponential backoff (2, 4, 8 s): long enough for a flaky share to recover, short enough
        # that a run that cannot finish is marked failed within seconds.
        raise self.retry(exc=exc, countdown=2 ** (self.request.retries + 1))


@shared_task(acks_late=True)
def resume_stalled_runs_task() -> None:
    snapshots.resume_stalled_runs()


@shared_task(acks_late=True)
def sweep_abandoned_ingests_task() -> None:
    ingest.sweep_abandoned_ingests()
