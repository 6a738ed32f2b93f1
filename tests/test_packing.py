"""The packed keys of the location stage: DuckDB's packing and Python's agree, a packed key orders like the tuple
of its fields, and the H3 field edits agree with the h3 library."""

import itertools
import random

import duckdb
import h3
import pytest

from microarea.packing import (
    HOURS_AT_CELL,
    HOURS_AT_CELL_WITH_DAYS,
    Packing,
    h3_child_sql,
    h3_last_digit_sql,
    h3_parent_sql,
)
from microarea.stages.location import HEX_CHOICE, SCORE_AND_DIGIT


@pytest.mark.parametrize("packing", [HOURS_AT_CELL, HOURS_AT_CELL_WITH_DAYS, SCORE_AND_DIGIT, HEX_CHOICE])
def test_sql_and_python_pack_alike_and_keys_order_like_their_fields(packing):
    rng = random.Random(7)
    rows = []
    for _ in range(200):
        # the extremes of every field as well as values inside them
        rows.append({name: rng.choice([0, 1, (1 << bits) - 1, rng.randrange(1 << bits)]) for name, bits in packing.fields})
    con = duckdb.connect()
    for row in rows:
        values = {name: f"{value}::HUGEINT" if bits > 62 else str(value) for (name, bits), value
                  in zip(packing.fields, row.values())}
        key = con.execute(f"SELECT {packing.pack_sql(**values)}").fetchone()[0]
        assert key == packing.pack(**row)
        for name in row:
            assert con.execute(f"SELECT {packing.unpack_sql(str(key) + '::' + packing.sql_type, name)}").fetchone()[0] \
                == row[name] == packing.unpack(key, name)
    keys = [packing.pack(**row) for row in rows]
    assert sorted(range(len(rows)), key=keys.__getitem__) == sorted(range(len(rows)), key=lambda i: tuple(rows[i].values()))


def test_a_value_wider_than_its_field_is_refused_and_fields_must_fit_the_type():
    with pytest.raises(ValueError, match="days = 1024 does not fit 10 bits"):
        HOURS_AT_CELL_WITH_DAYS.pack(hours=1, cell=1, days=1024)
    with pytest.raises(ValueError, match="hours = -1"):
        HOURS_AT_CELL.pack(hours=-1, cell=0)
    with pytest.raises(ValueError, match="64 bits do not fit a BIGINT"):
        Packing((("a", 32), ("b", 32)))


def test_h3_parent_child_and_digit_agree_with_the_h3_library():
    con = duckdb.connect()
    cells = [h3.latlng_to_cell(23.02 + i * 0.013, 113.1 + j * 0.017, 9) for i, j in itertools.product(range(6), range(6))]
    for cell in cells:
        index = h3.str_to_int(cell)
        for resolution in (5, 6, 7, 8):
            parent = con.execute(f"SELECT {h3_parent_sql(f'{index}::UBIGINT', resolution)}").fetchone()[0]
            assert parent == h3.str_to_int(h3.cell_to_parent(cell, resolution))
        digit = con.execute(f"SELECT {h3_last_digit_sql(f'{index}::UBIGINT')}").fetchone()[0]
        parent8 = h3.str_to_int(h3.cell_to_parent(cell, 8))
        child = con.execute(f"SELECT {h3_child_sql(f'{parent8}::UBIGINT', str(digit))}").fetchone()[0]
        assert child == index
