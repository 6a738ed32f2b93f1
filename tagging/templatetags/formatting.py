from django import template

register = template.Library()


@register.filter
def percent(value, digits: int = 2) -> str:
    """0.23126 -> "23.13%"; None (not computable) -> "—"."""
    return "—" if value is None else f"{value * 100:.{int(digits)}f}%"


def _english() -> bool:
    from django.utils.translation import get_language

    return (get_language() or "").startswith("en")


@register.filter
def named(thing) -> str:
    """A region's, product's or tag's name in the page's language: the English name where the page is English and
    one was given, the Chinese name otherwise."""
    return in_language(thing.name, getattr(thing, "name_en", ""))


@register.simple_tag
def in_language(chinese: str, english: str) -> str:
    """One of two names (a row's name and name_en) in the page's language, as `named` does."""
    return (english or chinese) if _english() else chinese


@register.filter
def label_of(code, choices: dict) -> str:
    """A code as its label in `choices` (a dict of code -> label, e.g. a TextChoices' dict(choices)); the code itself
    when it has none."""
    return choices.get(code, code) if code is not None else "—"
