"""The product association matrix of a published snapshot, over the user's districts, with a seed audience
per product (the holders of its strongly associated products who lack it)."""

from __future__ import annotations

import numpy as np
from django.conf import settings

from microarea.selectors import visible_districts
from tagging.lake import store
from tagging.models import Product, Snapshot
from tagging.services.audiences import current_snapshot
from tagging.stages import stage_files
from tagging.stages.features import product_feature

from ..association import association_rules, seed_audience


def product_association(*, user, snapshot: Snapshot | None = None) -> dict:
    snapshot = snapshot or current_snapshot()
    files = stage_files(snapshot.run_id, "features")
    con = store.reader()
    try:
        columns = {d[0] for d in con.execute(f"SELECT * FROM read_parquet({store.files_sql(files)}) LIMIT 0").description}
        codes = [c for c in Product.objects.order_by("code").values_list("code", flat=True) if product_feature(c) in columns]
        held = [f'"{product_feature(c)}"' for c in codes]
        # One pass: each product's holders and every pair's, among active subscribers of the user's districts.
        sums = [f"count(*) FILTER (WHERE {a})" for a in held] + [f"count(*) FILTER (WHERE {a} AND {b})" for a in held for b in held]
        counts = con.execute(
            f"SELECT count(*), {', '.join(sums) or '0'} FROM read_parquet({store.files_sql(files)}) "
            f"WHERE status = 'active' AND region_code IN (SELECT unnest($districts::VARCHAR[]))",
            {"districts": visible_districts(user)}).fetchone()
    finally:
        con.close()
    n, k = counts[0], len(codes)
    holders, both = np.array(counts[1:1 + k]), np.array(counts[1 + k:]).reshape(k, k)
    rules = association_rules(codes, n, holders, both)
    return {
        "snapshot": str(snapshot.as_of_date), "subscribers": n,
        "products": [{"code": c, "holders": int(h), "share": h / n if n else None} for c, h in zip(codes, holders)],
        "rules": rules,
        "seed_audiences": {c: seed_audience(c, rules, min_lift=settings.ASSOCIATION_MIN_LIFT,
                                            min_support=settings.ASSOCIATION_MIN_SUPPORT) for c in codes},
    }
