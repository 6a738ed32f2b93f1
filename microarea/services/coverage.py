"""Coverage footprints of the lake's cells, computed once per set of cell batches and kept in the lake."""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
from django.conf import settings

from tagging.lake import store
from tagging.models import IngestBatch
from tagging.stages import write_table_atomically

from ..coverage import RESOLUTION, footprints, sites_of
from ..packing import h3_parent_sql

# Raised whenever footprints are drawn differently, so that a lake's kept file is made again, not reused.
FOOTPRINT_MODEL = 2  # 2: sectors span the bisectors between a site's azimuths, not the beamwidth


def coverage_path(batch_ids: list[int]) -> Path:
    digest = hashlib.sha256(",".join(map(str, sorted(batch_ids))).encode()).hexdigest()[:16]
    return Path(settings.LAKE_DIR) / "coverage" / f"res{RESOLUTION}-v{FOOTPRINT_MODEL}-cells-{digest}.parquet"


def cell_coverage(*, batch_ids: list[int] | None = None) -> Path | None:
    """The footprint file of the cells in the given accepted batches (default: every accepted one):
    cell_key, site, h3 (res 9, as an integer), weight. Cells change rarely, so the file is made once per
    set of batches and every run pinning that set reads the same one. None when there are no cells."""
    batches = IngestBatch.objects.accepted().filter(dataset="cells")
    if batch_ids is not None:
        batches = batches.filter(id__in=batch_ids)
    ids = sorted(batches.values_list("id", flat=True))
    if not ids:
        return None
    target = coverage_path(ids)
    if target.exists():
        return target
    paths = list(IngestBatch.objects.filter(id__in=ids).order_by("id").values_list("lake_path", flat=True))
    con = store.connect()
    try:
        cells = con.execute(
            "SELECT cell_key, lon::DOUBLE AS lon, lat::DOUBLE AS lat, coalesce(azimuth::DOUBLE, 'NaN') AS azimuth, "
            "coalesce(beamwidth::DOUBLE, 'NaN') AS beamwidth, coalesce(range::DOUBLE, 'NaN') AS range_m, "
            f"coalesce(site_id, '') AS site_id FROM {store.read_sql('cells', paths)} ORDER BY cell_key"
        ).fetchnumpy()
    finally:
        con.close()
    columns = {name: np.asarray(values) for name, values in cells.items()}
    result = footprints(columns["cell_key"].astype(object), columns["lon"], columns["lat"], columns["azimuth"],
                        columns["beamwidth"], columns["range_m"], columns["site_id"].astype(object))
    site = dict(zip(columns["cell_key"], sites_of(columns["site_id"].astype(object), columns["lon"], columns["lat"])))
    table = pa.table({
        "cell_key": pa.array(result["cell_key"].astype(str)),
        "site": pa.array([int(site[k]) for k in result["cell_key"]], type=pa.int32()),
        "h3": pa.array(result["h3"], type=pa.uint64()),
        "weight": pa.array(result["weight"]),
    })
    write_table_atomically(table, target)
    return target


def cell_footprints(path: Path | None, keys: list[str]) -> dict[str, list[int]]:
    """The res-9 hexes of the given cells' footprints (only those: a province's file is millions of rows)."""
    if path is None or not keys:
        return {}
    con = store.reader()
    try:
        rows = con.execute(f"SELECT cell_key, list(h3 ORDER BY h3) FROM read_parquet('{path}') "
                           "WHERE cell_key IN (SELECT unnest($keys::VARCHAR[])) GROUP BY cell_key", {"keys": list(keys)}).fetchall()
    finally:
        con.close()
    return {key: [int(h) for h in hexes] for key, hexes in rows}


@lru_cache(maxsize=8)
def network_extent(path: Path | None) -> frozenset[int] | None:
    """The res-6 hexes the network of a coverage file covers (the city's extent, for refusing areas far outside
    it; a few hundred), or None without cells. A coverage file never changes: kept."""
    if path is None:
        return None
    con = store.reader()
    try:
        parents = con.execute(f"SELECT DISTINCT {h3_parent_sql('h3', 6)} FROM read_parquet('{path}')").fetchnumpy()
    finally:
        con.close()
    return frozenset(int(h) for h in next(iter(parents.values())))
