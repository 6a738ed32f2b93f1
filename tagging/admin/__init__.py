"""Django admin: reference data and runs (reference.py), the tag library (tags.py), the terminal library (terminals.py)."""

from . import reference, tags, terminals  # noqa: F401
