"""What every app's API shares: the snapshot a request asks for, file exports (CSV or JSON, streamed) with their
content negotiation, and JSON written from pre-encoded parts."""

from __future__ import annotations

import json
from collections.abc import Iterable

from django.http import HttpResponse, StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.negotiation import DefaultContentNegotiation

from ..models import Snapshot

SNAPSHOT_PARAMETER = OpenApiParameter("snapshot", int, description="Snapshot id (default: the current one)")


def snapshot_asked(request) -> Snapshot:
    """The snapshot named by ?snapshot=<id>, or the current one; NotFound/ValidationError otherwise."""
    asked = request.query_params.get("snapshot")
    if asked is not None and not asked.isdigit():
        raise ValidationError({"snapshot": f"a snapshot id (a whole number), not {asked!r}"})
    snapshot = Snapshot.objects.filter(id=int(asked)).first() if asked else Snapshot.objects.current()
    if snapshot is None:
        raise NotFound(f"no snapshot {asked}" if asked else "there is no published snapshot yet")
    return snapshot


class FormatIsTheFiles(DefaultContentNegotiation):
    """?format= names the export's file format (csv, json) here, not a DRF renderer; errors answer in JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


def export_response(chunks: Iterable[bytes], *, answer: str, filename: str, rows: int) -> StreamingHttpResponse:
    """A list export streamed as it is produced: CSV as an attachment named `filename`, or JSON; X-Rows says how
    many rows it holds."""
    response = StreamingHttpResponse(chunks,
                                     content_type="text/csv; charset=utf-8" if answer == "csv" else "application/json")
    if answer == "csv":
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Rows"] = str(rows)
    return response


def json_with_list(head: dict, key: str, items: Iterable[str]) -> HttpResponse:
    """A JSON object whose `key` is a list of items already encoded as JSON text (thousands of map features,
    whose outlines are encoded once per hex and kept: through a generic encoder they cost more than their query)."""
    text = json.dumps(head, ensure_ascii=False)
    return HttpResponse(f'{text[:-1]}{", " if head else ""}"{key}":[{",".join(items)}]}}', content_type="application/json")


class CodeField(serializers.SlugRelatedField):
    """A related object by its code; a code holding a NUL character names nothing (PostgreSQL cannot even compare
    one, so it is refused before the query, as an unknown code)."""

    def to_internal_value(self, data):
        if isinstance(data, str) and "\x00" in data:
            self.fail("does_not_exist", slug_name=self.slug_field, value=data.replace("\x00", "\\x00"))
        return super().to_internal_value(data)
