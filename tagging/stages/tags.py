"""The tag stage of a snapshot run: every enabled tag of a partition in one DuckDB pass, kept as bitmaps.

Before the stage starts, the run pins the tag versions it computes and fits the behaviour segments
(prepare). Each partition evaluates every tag over its feature rows in one query (tags that use other
tags come in later levels of the same query), writes a wide file of booleans (what rule previews and
profiles read) and one roaring bitmap per tag and per district. Publishing unions the partitions'
bitmaps and stores one row per (snapshot, tag) and (snapshot, district) in the publishing transaction.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
from django.conf import settings
from django.utils.translation import gettext_lazy as _
from pyroaring import BitMap

from .. import segments
from ..bitmaps import merge_bitmaps, to_bitmap, write_bitmaps
from ..lake.store import files_sql
from . import PartitionWork, Stage, register_stage, stage_files, write_atomically
from .features import feature_table_sql, partition_feature_files

BITMAPS = "tag_bitmaps"  # per-partition bitmap files, beside the stage's wide files
SEGMENT_SAMPLE = 30_000  # subscribers the k-means sees (plenty for 8 centroids in 8 dimensions); all are assigned


# --- prepare: pin versions, fit segments ------------------------------------------------------------------

def prepare_tags(run) -> dict:
    from ..services.tags import pin_tag_definitions

    fitted = fit_segments(run)
    return {"segments": fitted, "tags": pin_tag_definitions()}


def _fit_from(model) -> segments.SegmentFit | None:
    if model is None:
        return None
    codes = sorted(model.centroids)
    return segments.SegmentFit(
        features=model.features, mean=np.array(model.mean), scale=np.array(model.scale),
        centroids=np.array([model.centroids[c] for c in codes]), codes=codes, sizes=np.zeros(len(codes)),
    )


def fit_segments(run) -> dict | None:
    """Fit k-means on a deterministic sample of this run's features; keep codes stable against the
    current snapshot's model; make each segment a tag described by its distinguishing features."""
    from ..models import SegmentModel, Snapshot, TagDefinition
    from ..services.tags import VERSIONED_FIELDS, save_tag_definition

    k = settings.SEGMENT_COUNT
    if k < 1:
        return None
    files = stage_files(run.id, "features")
    columns = [sql for _, sql, _, _ in segments.BEHAVIOUR]
    features = [name for name, _, _, _ in segments.BEHAVIOUR]
    con = duckdb.connect()
    try:
        active = con.execute(f"SELECT count(*) FROM read_parquet({files_sql(files)}) WHERE status = 'active'").fetchone()[0]
        step = max(1, -(-active // SEGMENT_SAMPLE))
        # Every step-th id: the same sample every time for the same data, unlike a seeded reservoir
        # sample under parallel threads.
        sample = con.execute(
            f"SELECT {', '.join(columns)} FROM read_parquet({files_sql(files)}) "
            f"WHERE status = 'active' AND subscriber_id % {step} = 0"
        ).fetchnumpy()
    finally:
        con.close()
    values = np.column_stack([np.asarray(sample[c], dtype=float) for c in sample])
    if len(values) < k:
        return None
    current = Snapshot.objects.current()
    previous = SegmentModel.objects.filter(run__snapshot=current).first() if current else None
    fit = segments.fit(values, features, k, previous=_fit_from(previous), seed=settings.SEGMENT_SEED)
    descriptions = {code: segments.describe(centroid, features) for code, centroid in zip(fit.codes, fit.centroids)}
    model, _ = SegmentModel.objects.update_or_create(run=run, defaults=dict(
        k=len(fit.codes), features=features, mean=fit.mean.tolist(), scale=fit.scale.tolist(),
        centroids={c: row.tolist() for c, row in zip(fit.codes, fit.centroids)},
        descriptions={c: {"zh": zh, "en": en, "sample_share": round(float(n) / len(values), 4)}
                      for (c, (zh, en)), n in zip(descriptions.items(), fit.sizes)},
        sample_size=len(values), matched_to=previous,
    ))
    for code, (zh, en) in descriptions.items():
        tag = TagDefinition.objects.filter(code=code).first() or TagDefinition(code=code)
        before = [getattr(tag, name) for name in VERSIONED_FIELDS]
        tag.name, tag.name_en = f"分群:{zh}"[:64], f"Segment: {en}"[:64]
        tag.category, tag.kind, tag.enabled, tag.expression = TagDefinition.Category.SEGMENT, TagDefinition.Kind.SEGMENT, True, ""
        tag.description = (
            f"Behaviour segment by k-means (k={len(fit.codes)}) on standardised {', '.join(features)}. "
            f"Compared with the average subscriber: {en}. Each run re-centres the segment on its subscribers, so "
            "it keeps its code and its members from one snapshot to the next unless behaviour takes a new shape."
        )
        if tag.pk is None or before != [getattr(tag, name) for name in VERSIONED_FIELDS]:
            how = "re-centred" if fit.carried else "fitted afresh"
            save_tag_definition(tag=tag, note=f"{how} in run #{run.id}")  # checked and versioned only when it changed
    for tag in TagDefinition.objects.filter(kind=TagDefinition.Kind.SEGMENT, enabled=True).exclude(code__in=fit.codes):
        tag.enabled = False
        save_tag_definition(tag=tag, note=f"not among the {len(fit.codes)} segments of run #{run.id}")
    return {"model_id": model.id, "features": features, "mean": model.mean, "scale": model.scale,
            "codes": fit.codes, "centroids": fit.centroids.tolist(), "carried": fit.carried}


# --- compute one partition ---------------------------------------------------------------------------------

def _tag_sql(tag: dict) -> str:
    if tag["kind"] == "rule":
        return tag["sql"]
    if tag["kind"] == "segment":
        return f"coalesce(_segment = '{tag['code']}', false)"
    return f"coalesce(subscriber_id IN (SELECT subscriber_id FROM imported_members WHERE code = '{tag['code']}'), false)"


def tags_select(work: PartitionWork) -> str:
    """One query computing every pinned tag for the partition, level by level."""
    pinned = work.definitions["tags"]
    table = feature_table_sql(partition_feature_files(work))
    steps = [f"level0 AS (SELECT * FROM {table})"]
    fitted = work.definitions.get("segments")
    if fitted:
        fit = segments.SegmentFit(fitted["features"], np.array(fitted["mean"]), np.array(fitted["scale"]),
                                  np.array(fitted["centroids"]), fitted["codes"], np.zeros(len(fitted["codes"])))
        column_sql = {name: sql for name, sql, _, _ in segments.BEHAVIOUR}
        standardised = ", ".join(f"{sql} AS _z{i}" for i, sql in enumerate(segments.standardised_sql(fit, column_sql)))
        steps.append(f"standardised AS (SELECT *, {standardised} FROM level0)")
        steps.append(f"distances AS (SELECT *, {segments.distances_sql(fit)} AS _distances FROM standardised)")
        steps.append(f"segmented AS (SELECT *, {segments.nearest_code_sql(fit, '_distances')} AS _segment FROM distances)")
    previous = steps[-1].split(" AS (", 1)[0]
    for level in sorted({t["level"] for t in pinned}):
        columns = ", ".join(f'{_tag_sql(t)} AS "{t["code"]}"' for t in pinned if t["level"] == level)
        steps.append(f"level{level} AS (SELECT *, {columns} FROM {previous})")
        previous = f"level{level}"
    codes = ", ".join(f'"{t["code"]}"' for t in pinned)
    return f"WITH {', '.join(steps)} SELECT subscriber_id{', ' + codes if codes else ''} FROM {previous}"


def _register_imported(con: duckdb.DuckDBPyConnection, work: PartitionWork) -> None:
    from ..models import TagVersion

    ids, codes = [np.zeros(0, dtype=np.int64)], [np.zeros(0, dtype=object)]
    imported = [t for t in work.definitions["tags"] if t["kind"] == "imported"]
    for version in TagVersion.objects.filter(id__in=[t["version_id"] for t in imported]).select_related("tag"):
        members = BitMap.deserialize(bytes(version.members)) if version.members else BitMap()
        members = np.asarray(members.to_array(), dtype=np.int64)
        members = members[(members >= work.id_from) & (members < work.id_to)]
        ids.append(members)
        codes.append(np.full(len(members), version.tag.code, dtype=object))
    con.register("imported_members", pa.table({"subscriber_id": np.concatenate(ids), "code": np.concatenate(codes).astype(str)}))


def _failing_tag(con: duckdb.DuckDBPyConnection, work: PartitionWork) -> dict | None:
    """Which pinned tag makes the pass fail: compute the tags one level prefix at a time."""
    pinned = work.definitions["tags"]
    for count in range(1, len(pinned) + 1):
        trial = replace(work, definitions={**work.definitions, "tags": pinned[:count]})
        try:
            # Aggregate the newest tag's own column, so the optimiser cannot skip computing it.
            con.execute(f'SELECT bool_or("{pinned[count - 1]["code"]}") FROM ({tags_select(trial)})').fetchone()
        except duckdb.Error:
            return pinned[count - 1]
    return None


def compute_tags(con: duckdb.DuckDBPyConnection, work: PartitionWork, target: Path) -> dict:
    from ..services.snapshots import StageFailed

    _register_imported(con, work)
    try:
        write_atomically(con, tags_select(work), target)
    except duckdb.Error as exc:
        failing = _failing_tag(con, work)
        if failing is None:
            raise
        message = str(exc).splitlines()[0]
        raise StageFailed(f"tag {failing['code']} (v{failing['version']}) failed on the data: {message}") from None
    data = con.execute(f"SELECT * FROM read_parquet('{target}')").fetchnumpy()
    ids = np.asarray(data["subscriber_id"])
    entries = [("tag", tag["code"], to_bitmap(ids[np.asarray(data[tag["code"]], dtype=bool)]))
               for tag in work.definitions["tags"]]
    regions = con.execute(
        f"SELECT region_code, subscriber_id FROM read_parquet('{work.earlier_output('features')}') ORDER BY region_code"
    ).fetchnumpy()
    region_codes, region_ids = np.asarray(regions["region_code"]).astype(str), np.asarray(regions["subscriber_id"])
    entries += [("region", str(code), to_bitmap(region_ids[region_codes == code])) for code in np.unique(region_codes)]
    write_bitmaps(entries, work.output_path(BITMAPS, work.index))
    memberships = sum(len(bitmap) for kind, _, bitmap in entries if kind == "tag")
    return {"subscribers": len(ids), "tags": len(work.definitions["tags"]), "tag_memberships": memberships}


# --- publish -------------------------------------------------------------------------------------------------

def publish_tags(run, snapshot) -> dict:
    """Union the partitions' bitmaps and store one per (snapshot, tag) and (snapshot, district)."""
    from ..models import Region, RegionSnapshot, TagDefinition, TagSnapshot

    merged = merge_bitmaps(stage_files(run.id, BITMAPS))
    pinned = run.definitions.get("tags", [])
    tags = dict(TagDefinition.objects.filter(code__in=[t["code"] for t in pinned]).values_list("code", "id"))
    TagSnapshot.objects.bulk_create([
        TagSnapshot(snapshot=snapshot, tag_id=tags[t["code"]], version_id=t["version_id"],
                    subscriber_count=len(bitmap), bitmap=bitmap.serialize())
        for t in pinned for bitmap in [merged.get(("tag", t["code"]), BitMap())]
    ])
    regions = dict(Region.objects.filter(code__in=[key for kind, key in merged if kind == "region"]).values_list("code", "id"))
    RegionSnapshot.objects.bulk_create([
        RegionSnapshot(snapshot=snapshot, region_id=regions[key], subscriber_count=len(bitmap), bitmap=bitmap.serialize())
        for (kind, key), bitmap in merged.items() if kind == "region" and key in regions
    ])
    return {"tags": len(pinned), "regions": len(regions)}


register_stage(Stage("tags", _("Tags"), 40, compute_tags, prepare=prepare_tags, publish=publish_tags))
