"""Django admin for micro-areas: listed in the user's regions; made through the map, the API or a GeoJSON import."""

from django.contrib import admin

from tagging.admin.reference import RegionScopedAdmin

from .models import MicroArea


@admin.register(MicroArea)
class MicroAreaAdmin(RegionScopedAdmin):
    list_display = ["name", "kind", "region", "source", "hex_count", "created_by", "created_at"]
    list_filter = ["kind", "region", "source"]
    search_fields = ["name"]
    readonly_fields = ["source", "geometry", "definition", "hex_count", "created_by", "created_at"]
    exclude = ["hexes"]

    def has_add_permission(self, request):
        return False  # drawn on the map or posted to the API, where the polygon is checked and filled with hexes
