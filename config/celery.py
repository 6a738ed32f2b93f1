import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Runs whose worker died mid-partition are picked up again, and abandoned ingests swept (beat: `celery -A config worker -B` on one machine,
# or a separate `celery -A config beat`).
app.conf.beat_schedule = {
    "resume-stalled-snapshot-runs": {"task": "tagging.tasks.resume_stalled_runs_task", "schedule": 60.0},
    # Ingest batches and files a killed ingest left behind (the next ingest of the dataset sweeps its own too).
    "sweep-abandoned-ingests": {"task": "tagging.tasks.sweep_abandoned_ingests_task", "schedule": 300.0},
}
