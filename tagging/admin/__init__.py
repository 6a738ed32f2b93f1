"""Django admin: reference data and runs (reference.py), the tag library (tags.py)."""

from . import reference, tags  # noqa: F401
