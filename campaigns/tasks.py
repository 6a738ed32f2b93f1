"""Celery tasks of the campaigns app: take ids, call one service."""

from celery import shared_task

from .services.triggers import apply_event_triggers


@shared_task(acks_late=True, autoretry_for=(Exception,), max_retries=3, retry_backoff=True)
def apply_event_triggers_task(batch_id: int) -> None:
    # Idempotent: a subscriber joins a campaign's stream once, so a redelivered batch adds nothing.
    apply_event_triggers(batch_id=batch_id)
