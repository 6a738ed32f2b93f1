"""Several whole numbers packed into one integer, most significant field first, so that one max() or arg_max()
over the packed key orders rows by the fields in turn (a pair compared as one BIGINT costs a fraction of a
compared struct), and the fields come back out with shifts and masks. Pure: SQL text for DuckDB, and the same
arithmetic in Python for tests and for reading a key back.

Also the fields of an H3 index held as UBIGINT that the location stage edits in SQL."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Packing:
    fields: tuple[tuple[str, int], ...]  # (name, bits), most significant first
    sql_type: str = "BIGINT"

    def __post_init__(self) -> None:
        total = sum(bits for _, bits in self.fields)
        room = {"BIGINT": 63, "HUGEINT": 127, "UBIGINT": 64}[self.sql_type]
        if total > room:
            raise ValueError(f"{total} bits do not fit a {self.sql_type} ({room})")

    def _shift(self, name: str) -> int:
        names = [n for n, _ in self.fields]
        return sum(bits for _, bits in self.fields[names.index(name) + 1:])

    def _bits(self, name: str) -> int:
        return dict(self.fields)[name]

    def pack_sql(self, **values: str) -> str:
        """SQL packing the fields' SQL expressions (each a non-negative whole number within its width)."""
        return "(" + " | ".join(f"(({values[name]})::{self.sql_type} << {self._shift(name)})" for name, _ in self.fields) + ")"

    def unpack_sql(self, key: str, name: str) -> str:
        """SQL taking one field back out of a packed key."""
        return f"((({key}) >> {self._shift(name)}) & {(1 << self._bits(name)) - 1})"

    def pack(self, **values: int) -> int:
        key = 0
        for name, bits in self.fields:
            value = values[name]
            if not 0 <= value < 1 << bits:
                raise ValueError(f"{name} = {value} does not fit {bits} bits")
            key = key << bits | value
        return key

    def unpack(self, key: int, name: str) -> int:
        return (key >> self._shift(name)) & ((1 << self._bits(name)) - 1)


# Cells are numbered densely per run, days and hours counted over the snapshot window.
CELL_BITS = 32
DAYS_BITS = 10  # up to 1,023 days
HOURS_BITS = 21  # up to 2,097,151 hours
# Home: most night hours, ties to the higher cell; the frequent cell the same over all hours.
HOURS_AT_CELL = Packing((("hours", HOURS_BITS), ("cell", CELL_BITS)))
# Work: most office hours, then cell, with the cell's office days carried along.
HOURS_AT_CELL_WITH_DAYS = Packing((("hours", HOURS_BITS), ("cell", CELL_BITS), ("days", DAYS_BITS)))

# H3 index (UBIGINT): the resolution in bits 52-55, then fifteen 3-bit digits, the one of resolution r at bit
# 3 * (15 - r); a digit a coarser cell does not use is 7.
H3_RESOLUTION_SHIFT = 52
H3_DIGIT_BITS = 3
H3_UNUSED_DIGIT = 7


def h3_digit_shift(resolution: int) -> int:
    return H3_DIGIT_BITS * (15 - resolution)


def h3_parent_sql(h3: str, resolution: int, *, of: int = 9) -> str:
    """The res-`resolution` parent of a res-`of` H3 index held as UBIGINT: set the resolution field and mark the
    dropped digits unused, as h3's cell_to_parent does."""
    dropped = of - resolution
    digits = ((1 << (H3_DIGIT_BITS * dropped)) - 1) << h3_digit_shift(of)
    return (f"(({h3} & ~(15::UBIGINT << {H3_RESOLUTION_SHIFT}) & ~({digits}::UBIGINT)) "
            f"| ({resolution}::UBIGINT << {H3_RESOLUTION_SHIFT}) | {digits}::UBIGINT)")


def h3_last_digit_sql(h3: str, resolution: int = 9) -> str:
    """The digit of `resolution` (which of its parent's seven children an index is)."""
    return f"(({h3} >> {h3_digit_shift(resolution)}) & {H3_UNUSED_DIGIT})"


def h3_child_sql(parent: str, digit: str, resolution: int = 9) -> str:
    """The res-`resolution` child of a res-(resolution - 1) index with the given last digit."""
    shift = h3_digit_shift(resolution)
    return (f"(((({parent} & ~(15::UBIGINT << {H3_RESOLUTION_SHIFT})) | ({resolution}::UBIGINT << {H3_RESOLUTION_SHIFT}))"
            f" & ~({H3_UNUSED_DIGIT}::UBIGINT << {shift})) | (({digit})::UBIGINT << {shift}))")
