"""Celery tasks: take ids, call one service. Run state lives in the database, not in Celery."""

from celery import shared_task

from .services import snapshots


@shared_task(bind=True, acks_late=True, max_retries=3, retry_backoff=True, retry_backoff_max=120)
def compute_partition_task(self, partition_id: int) -> None:
    try:
        snapshots.compute_partition(partition_id=partition_id)
    except Exception as exc:
        if self.request.retries >= self.max_retries:
            snapshots.fail_run_of_partition(partition_id=partition_id, error=f"{type(exc).__name__}: {exc}")
            return
        raise self.retry(exc=exc)
