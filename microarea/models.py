"""Micro-areas (微区域): named sets of res-9 H3 hexes in a district, drawn, listed or made from cells."""

from __future__ import annotations

import numpy as np
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from tagging.models import Region
from tagging.models.reference import RegionScopedQuerySet


class MicroArea(models.Model):
    class Kind(models.TextChoices):
        CAMPUS = "campus", _("Campus")
        BUSINESS = "business", _("Business district")
        RESIDENTIAL = "residential", _("Residential")
        VILLAGE = "village", _("Village")
        TRANSPORT = "transport", _("Transport hub")
        DISTRICT = "district", _("District")
        CUSTOM = "custom", _("Custom")

    class Source(models.TextChoices):
        POLYGON = "polygon", _("Polygon")
        HEXES = "hexes", _("Hex list")
        CELLS = "cells", _("Cell list")

    name = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CUSTOM)
    region = models.ForeignKey(Region, on_delete=models.PROTECT, related_name="micro_areas")
    source = models.CharField(max_length=8, choices=Source.choices)
    geometry = models.JSONField(null=True, blank=True, help_text="GeoJSON polygon as drawn (polygon areas)")
    definition = models.JSONField(default=list, blank=True, help_text="The hexes or cell keys as given")
    hexes = models.BinaryField(help_text="Res-9 H3 indexes, uint64 little-endian, sorted")
    hex_count = models.PositiveIntegerField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = RegionScopedQuerySet.as_manager()

    class Meta:
        ordering = ["region", "name"]
        constraints = [models.UniqueConstraint(fields=["region", "name"], name="micro_area_name_unique_in_region")]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()}, {self.hex_count} hexes)"

    def hex_array(self) -> np.ndarray:
        return np.frombuffer(bytes(self.hexes), dtype="<u8")
