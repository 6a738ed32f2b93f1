"""Ingest: the service that takes a raw file into the lake, all rows or none. The pipeline's steps live in
tagging/lake/: staging and checks (staging.py), the reject report (reject_report.py), the database mirror
(mirror.py); this module orders them, holds the dataset's lock and records the batch."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..lake import store
from ..lake.mirror import mirror_rows
from ..lake.reject_report import Outcome, detailed_problems, write_reject_report
from ..lake.schemas import DATASETS, INGEST_ORDER, Dataset
from ..lake.staging import FileProblem, Source, period_of, utf8_copy, write_staging
from ..models import IngestBatch

# Dataset -> what to call with an accepted batch's id once its ingest has committed (event triggers
# register here: campaigns act on signalling events within minutes of their arrival).
ACCEPTED_HOOKS: dict[str, list[Callable[[int], None]]] = {}

logger = logging.getLogger("tagging.ingest")


class UnknownDataset(ValueError):
    pass


def ingest_file(*, dataset: str, path: Path, user=None, encoding: str = "utf-8") -> IngestBatch:
    """Validate `path` as `dataset`; accept every row into the lake, or reject the file and say why."""
    spec = DATASETS.get(dataset)
    if spec is None:
        raise UnknownDataset(f"unknown dataset {dataset!r}; known: {', '.join(DATASETS)}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    size = path.stat().st_size
    with _dataset_lock(dataset), ThreadPoolExecutor(max_workers=1) as hasher:
        _sweep_dataset(dataset)  # holding the lock, any batch still "running" here was left by a killed process
        batch = IngestBatch.objects.create(
            dataset=dataset, file_name=str(path), size_bytes=size,
            created_by=user if user and user.is_authenticated else None,
        )
        if IngestBatch.objects.accepted().filter(dataset=dataset, size_bytes=size).exists():
            # Perhaps the same file again: find out before doing any work.
            checksum = _sha256(path)
            previous = IngestBatch.objects.accepted().filter(dataset=dataset, checksum=checksum).first()
            if previous:
                return _finish(batch, IngestBatch.Status.UNCHANGED, checksum=checksum, same_as=previous,
                               rows_total=previous.rows_total,
                               message=f"Same file (SHA-256) already accepted as batch #{previous.id}; nothing changed.")
            return _ingest(spec, path, batch, checksum, encoding)
        # No accepted file has this size, so this one is new: hash it while DuckDB reads it.
        return _ingest(spec, path, batch, hasher.submit(_sha256, path), encoding)


def ingest_folder(folder: Path, datasets: list[str] = INGEST_ORDER, *,
                  on_batch: Callable[[IngestBatch], None] | None = None) -> list[IngestBatch]:
    """Ingest a delivered (or simulated) folder holding one `<dataset>.csv` or `.parquet` per dataset, references
    first. Every file is found before any is ingested; the first rejected file stops the rest, which depend on it.
    Returns the batches in order (the last one rejected if a file was)."""
    folder = Path(folder)
    paths = {}
    for dataset in datasets:
        candidates = [folder / f"{dataset}.csv", folder / f"{dataset}.parquet"]
        paths[dataset] = next((p for p in candidates if p.is_file()), None)
        if paths[dataset] is None:
            raise FileNotFoundError(f"{folder} has no {dataset}.csv or {dataset}.parquet")
    batches = []
    for dataset, path in paths.items():
        batches.append(ingest_file(dataset=dataset, path=path))
        if on_batch:
            on_batch(batches[-1])
        if batches[-1].status == IngestBatch.Status.REJECTED:
            break
    return batches


@contextmanager
def _dataset_lock(dataset: str, *, wait: bool = True):
    """One ingest per dataset at a time (new subscriber ids, duplicate checks against the lake);
    ingests of different datasets run in parallel. The lock dies with its process, so a killed ingest
    never blocks the next. With wait=False, yields whether the lock was free (and then holds it)."""
    folder = store.dataset_dir(dataset)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".ingest.lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sweep_dataset(dataset: str) -> int:
    """With the dataset's lock held (so no live process is ingesting it): batches left "running" by a killed
    process are marked rejected and their files (staging file, transcoded copy, a lake file moved into place
    just before the kill) removed. Only those batches' files: a file the database does not know (a database
    restored from an older backup) is never deleted. Returns how many batches were closed."""
    stale = list(IngestBatch.objects.filter(dataset=dataset, status=IngestBatch.Status.RUNNING).values_list("id", flat=True))
    IngestBatch.objects.filter(id__in=stale, status=IngestBatch.Status.RUNNING).update(
        status=IngestBatch.Status.REJECTED, finished_at=timezone.now(),
        message="Abandoned: the process ingesting it stopped (killed?) before it finished; nothing was accepted. "
                "Ingest the file again.")
    for batch_id in stale:
        store.batch_path(dataset, batch_id).unlink(missing_ok=True)
        (store.dataset_dir(dataset) / f".staging-{batch_id}.parquet").unlink(missing_ok=True)
        for copy in (Path(settings.DATA_DIR) / "tmp").glob(f"ingest-{batch_id}.*"):
            copy.unlink(missing_ok=True)
    if stale:
        logger.warning("%s: %s abandoned ingest batches closed (%s)", dataset, len(stale), ", ".join(f"#{i}" for i in stale))
    return len(stale)


def sweep_abandoned_ingests() -> int:
    """What resume_runs and Celery beat do for ingests: sweep every dataset nobody is ingesting now."""
    closed = 0
    for dataset in DATASETS:
        with _dataset_lock(dataset, wait=False) as free:
            if free:
                closed += _sweep_dataset(dataset)
    return closed


def _ingest(spec: Dataset, path: Path, batch: IngestBatch, checksum: str | Future, encoding: str) -> IngestBatch:
    dataset = spec.name

    def record_checksum() -> None:
        if not batch.checksum:
            batch.checksum = checksum.result() if isinstance(checksum, Future) else checksum
            batch.save(update_fields=["checksum"])

    staging = store.dataset_dir(dataset) / f".staging-{batch.id}.parquet"
    text_path = path
    con = store.connect()
    try:
        # Communication records are plain ASCII in any encoding, and a transcoded copy would hold numbers outside
        # the operator in clear: they are read as they are.
        if encoding.lower().replace("_", "-") not in {"utf-8", "utf8"} and not spec.parties:
            text_path = utf8_copy(path, encoding, batch.id)
        source = Source.open(con, spec, text_path)
        # Fast path: one pass types, flags and writes every row; only a file with problems pays for
        # the second, detailed pass that names each one.
        rows, problems, parser_rejects = write_staging(con, spec, source, batch.id, staging, native=source.is_csv)
        record_checksum()
        if problems:
            con.close()
            con = store.connect()
            outcome = detailed_problems(con, spec, source)
            if outcome.errors_count:
                return _reject(batch, outcome)
            if parser_rejects:
                # The parser refused a value the detailed pass reads as good, so the staging file lacks
                # that row: write it again the detailed pass's way, reading every value as text.
                rows, problems, _ = write_staging(con, spec, source, batch.id, staging, native=False)
                if problems:
                    raise RuntimeError(f"{spec.name}: the fast and the detailed checks disagree about this file")
        period = period_of(con, spec, staging)
        final = store.batch_path(dataset, batch.id)
        try:
            with transaction.atomic():
                mirror_rows(con, spec, staging, batch.id)
                # Readers find lake files through accepted batches only, so the file may appear just
                # before the commit; if the commit fails it is removed again.
                os.replace(staging, final)
                for hook in ACCEPTED_HOOKS.get(dataset, []):
                    transaction.on_commit(lambda hook=hook: hook(batch.id))
                return _finish(batch, IngestBatch.Status.ACCEPTED, rows_total=rows, rows_accepted=rows,
                               lake_path=str(final), period_start=period[0], period_end=period[1],
                               message=f"{rows:,} rows accepted.")
        except Exception:
            final.unlink(missing_ok=True)
            raise
    except FileProblem as problem:
        record_checksum()
        return _reject(batch, Outcome(rows=0, errors=[problem.error], errors_count=1, bad_rows=0))
    except Exception as exc:
        record_checksum()
        _finish(batch, IngestBatch.Status.REJECTED, message=f"Ingest failed, nothing was written: {exc}")
        raise
    finally:
        con.close()
        staging.unlink(missing_ok=True)
        if text_path != path:
            text_path.unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()  # releases the GIL on large chunks, so it overlaps DuckDB's work
    with open(path, "rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _reject(batch: IngestBatch, outcome: Outcome) -> IngestBatch:
    return _finish(batch, IngestBatch.Status.REJECTED, **write_reject_report(batch_id=batch.id, dataset=batch.dataset,
                                                                            outcome=outcome))


def _finish(batch: IngestBatch, status: str, **fields) -> IngestBatch:
    batch.status = status
    batch.finished_at = timezone.now()
    for name, value in fields.items():
        setattr(batch, name, value)
    batch.save(update_fields=["status", "finished_at", *fields])
    return batch
