import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from simulation import CityParameters, simulate_city
from tagging.lake.schemas import INGEST_ORDER
from tagging.models import IngestBatch, SnapshotRun

ROOT = Path(__file__).resolve().parent.parent
SERVICES = bool(settings.REDIS_URL)  # `make test-services`: PostgreSQL, Redis and a real Celery worker

SMALL_CITY = CityParameters(subscribers=1200, days=14, seed=7)


@pytest.fixture(autouse=True)
def generous_rates(monkeypatch):
    """Per-user rates out of the way of tests that ask many questions (tests of the rates set their own), and
    nothing counted by an earlier test."""
    from django.core.cache import cache
    from rest_framework.throttling import SimpleRateThrottle

    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {scope: "100000/min" for scope in SimpleRateThrottle.THROTTLE_RATES})
    cache.clear()


@pytest.fixture(scope="session")
def shared_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(autouse=True)
def data_dir(settings, tmp_path, shared_data_dir) -> Path:
    """Every test writes its lake and reports under a scratch DATA_DIR. With a real worker the folder
    is shared for the session, since the worker process must read the same lake."""
    folder = shared_data_dir if SERVICES else tmp_path / "data"
    folder.mkdir(exist_ok=True)
    settings.DATA_DIR = folder
    settings.LAKE_DIR = folder / "lake"
    return folder


@pytest.fixture(scope="session")
def small_city(tmp_path_factory) -> Path:
    """A small simulated city, written once per session; tests ingest it into their own database."""
    folder = tmp_path_factory.mktemp("city")
    simulate_city(SMALL_CITY, folder)
    return folder


# Leavers are about 2 in 100 a month: 300 held-out leavers in a 30-day window need some 50,000 subscribers. Usage
# only (no signalling): the churn signals live in usage, subscribers, events and call records.
CHURN_CITY = CityParameters(subscribers=50_000, days=60, seed=11, signalling=False, file_format="parquet")
WITHOUT_SIGNALLING = [d for d in INGEST_ORDER if d not in ("stays", "imei_observations")]


@pytest.fixture(scope="session")
def churn_city(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("churn_city")
    simulate_city(CHURN_CITY, folder)
    return folder


def ingest_city(folder: Path, datasets=INGEST_ORDER) -> None:
    from tagging.services.ingest import ingest_folder

    last = ingest_folder(folder, datasets)[-1]
    assert last.status == IngestBatch.Status.ACCEPTED, (last.dataset, last.message, last.errors[:5])


class Worker:
    """A real `celery worker` process group on the test database and the shared lake."""

    def __init__(self, env: dict):
        self.env, self.process = env, None

    def start(self, **env_overrides: str) -> None:
        from config.celery import app

        self.process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "config", "worker",
             "--loglevel=" + os.environ.get("TEST_WORKER_LOGLEVEL", "warning"), "--concurrency=2",
             "--without-gossip", "--without-mingle", "--without-heartbeat"],
            cwd=ROOT, env={**self.env, **env_overrides}, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not app.control.ping(timeout=1.0):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("the Celery worker did not start")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes at once, as a crashed machine would."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, shared_data_dir):
    """In services mode, a real `celery worker` on the test database and the shared lake (None otherwise)."""
    if not SERVICES:
        yield None
        return
    import redis

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # no task left over from an earlier session
    db = connection.settings_dict
    url = f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    worker = Worker({**os.environ, "DATABASE_URL": url, "DATA_DIR": str(shared_data_dir), "REDIS_URL": settings.REDIS_URL})
    worker.start()
    yield worker
    worker.stop()


@pytest.fixture
def run_to_end(celery_worker_process):
    """Wait for a snapshot run to finish, however its tasks run (eagerly, or on the worker)."""

    def wait(run: SnapshotRun, timeout: float = 180) -> SnapshotRun:
        deadline = time.monotonic() + timeout
        while True:
            run.refresh_from_db()
            if run.status in (SnapshotRun.Status.SUCCEEDED, SnapshotRun.Status.FAILED):
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"run #{run.id} still {run.status} after {timeout}s: {list(run.partitions.values('stage', 'status', 'error'))}")
            time.sleep(0.2)

    return wait


@pytest.fixture
def published_city(small_city, run_to_end) -> SnapshotRun:
    """The small city ingested, its districts as micro-areas, the starting tag catalogue, and one published
    snapshot over its whole window: the run."""
    from microarea.services.imports import import_micro_areas
    from tagging.services.snapshots import start_snapshot_run
    from tagging.services.tags import install_starting_catalogue

    ingest_city(small_city)
    import_micro_areas(small_city / "districts.geojson")
    install_starting_catalogue()
    return run_to_end(start_snapshot_run(as_of=SMALL_CITY.end_date, window_days=SMALL_CITY.days, partition_size=600))
