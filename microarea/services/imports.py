"""Micro-areas from a GeoJSON FeatureCollection (the simulated city's districts.geojson, or a GIS export)."""

from __future__ import annotations

import json
from pathlib import Path

from django.db import transaction

from tagging.models import Region

from ..models import MicroArea
from .coverage import cell_coverage
from .micro_areas import MicroAreaRefused, create_micro_area


@transaction.atomic
def import_micro_areas(path: Path, *, kind: str = MicroArea.Kind.DISTRICT, user=None) -> tuple[int, int]:
    """Create a micro-area per feature (properties: name, region_code, optional kind); features already
    there (same region and name) are kept as they are. All or nothing: a bad feature refuses the file,
    naming its position. Returns (created, kept)."""
    try:
        collection = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MicroAreaRefused(f"{path}: not a readable GeoJSON file ({exc})", field="file") from None
    features = collection.get("features") if isinstance(collection, dict) else None
    if not isinstance(features, list):
        raise MicroAreaRefused(f"{path}: not a GeoJSON FeatureCollection", field="file")
    coverage = cell_coverage()
    created = kept = 0
    for position, feature in enumerate(features, start=1):
        properties = feature.get("properties") or {}
        name = properties.get("name") or properties.get("name_en") or ""
        region = Region.objects.filter(code=str(properties.get("region_code", ""))).first()
        if region is None:
            raise MicroAreaRefused(f"feature {position}: unknown region_code {properties.get('region_code')!r}", field="file")
        if MicroArea.objects.filter(region=region, name=name).exists():
            kept += 1
            continue
        try:
            create_micro_area(name=name, kind=properties.get("kind", kind), region=region, user=user,
                              geometry=feature.get("geometry"), coverage_file=coverage)
        except MicroAreaRefused as exc:
            raise MicroAreaRefused(f"feature {position} ({name}): {exc}", field="file") from None
        created += 1
    return created, kept
