"""area("...") and hex("...") in audience expressions: the subscribers whose home, in the snapshot, is
in a micro-area of the user's districts or in an H3 hex. Registered into the tagging app's audience
functions by MicroareaConfig.ready()."""

from __future__ import annotations

import difflib
from functools import lru_cache

import h3
import numpy as np
from pyroaring import BitMap, FrozenBitMap

from tagging.expressions import ExpressionError
from tagging.models import Region
from tagging.services.audiences import stage_members

from .models import MicroArea
from .selectors import res9_hexes
from .stages.aggregates import RESOLUTIONS


@lru_cache(maxsize=256)
def living_in(run_id: int, hexes: bytes) -> FrozenBitMap:
    """The subscribers whose home hex (res 9) in the run is one of `hexes` (uint64, as MicroArea keeps them).
    A run's files never change, so the answer is kept."""
    return stage_members(run_id, "location", "home_h3 IN (SELECT unnest($hexes::UBIGINT[]))",
                         {"hexes": np.frombuffer(hexes, dtype="<u8").tolist()})


def area_audience(bitmaps, argument: str) -> BitMap:
    """area("季华商圈") or, where two of the user's districts have an area of that name, area("禅城区/季华商圈")."""
    district, _, name = argument.rpartition("/")
    areas = MicroArea.objects.filter(region__code__in=bitmaps.districts, region__level=Region.Level.DISTRICT)
    if district:
        areas = areas.filter(region__name=district) | areas.filter(region__code=district)
    found = list(areas.filter(name=name).select_related("region"))
    if not found:
        names = list(MicroArea.objects.filter(region__code__in=bitmaps.districts).values_list("name", flat=True))
        close = difflib.get_close_matches(name, names, n=3)
        hint = f"; did you mean {', '.join(close)}" if close else ""
        raise ExpressionError(f'area("{argument}"): no micro-area of that name in your districts{hint}', token=argument)
    if len(found) > 1:
        choices = ", ".join(f'area("{a.region.name}/{a.name}")' for a in found)
        raise ExpressionError(f'area("{argument}"): more than one of your districts has it; name one: {choices}',
                              token=argument)
    return living_in(bitmaps.snapshot.run_id, bytes(found[0].hexes))


def hex_audience(bitmaps, argument: str) -> BitMap:
    """hex("88411d7851fffff"): an H3 cell of resolution 9, 8 or 7. For analysts only: a hex holds a handful of
    homes, and its exact count is what the suppressed map hides from sales staff and field teams."""
    if not bitmaps.exact:
        raise ExpressionError(f'hex("{argument}"): counting single hexes is for analysts; use area("...") with a '
                              "micro-area of your districts", token=argument)
    if not h3.is_valid_cell(argument) or h3.get_resolution(argument) not in RESOLUTIONS:
        raise ExpressionError(f'hex("{argument}"): not an H3 cell of resolution {", ".join(map(str, RESOLUTIONS))}',
                              token=argument)
    return living_in(bitmaps.snapshot.run_id, np.sort(res9_hexes(argument)).tobytes())
