from django import template

register = template.Library()


@register.filter
def percent(value, digits: int = 2) -> str:
    """0.23126 -> "23.13%"; None (not computable) -> "—"."""
    return "—" if value is None else f"{value * 100:.{int(digits)}f}%"
