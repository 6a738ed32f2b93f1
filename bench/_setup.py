"""Shared start-up for benchmarks: a throw-away DATA_DIR and database, Django configured."""

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def django_in_scratch(prefix: str) -> Path:
    """Point DATA_DIR (and the embedded SQLite database) at a fresh folder, then set Django up."""
    scratch = Path(tempfile.mkdtemp(prefix=prefix))
    os.environ["DATA_DIR"] = str(scratch)
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return scratch


class Timer:
    def __enter__(self):
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.started
