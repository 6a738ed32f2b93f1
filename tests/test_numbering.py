"""China's numbering plan: numbers as switches write them, normalised, and their network. Pure: DuckDB only."""

import duckdb
import pytest

from tagging.numbering import network_sql, normalised_sql

CASES = [
    # written, national form, network
    ("13812345678", "13812345678", "cmcc"),
    ("+8613812345678", "13812345678", "cmcc"),
    ("008613812345678", "13812345678", "cmcc"),
    ("8613812345678", "13812345678", "cmcc"),
    ("+86 138-1234-5678", "13812345678", "cmcc"),
    ("17951 13012345678", "13012345678", "cu"),  # an IP long-distance access code in front
    ("18912345678", "18912345678", "ct"),
    ("19212345678", "19212345678", "cbn"),
    ("17012345678", "17012345678", "mvno"),
    ("16512345678", "16512345678", "mvno"),
    ("0757-83001234", "075783001234", "fixed"),
    ("+86 757 83001234", "075783001234", "fixed"),  # a landline with the country code loses its 0
    ("(020)87654321", "02087654321", "fixed"),
    ("10086", "10086", "service_cmcc"),
    ("10010", "10010", "service_cu"),
    ("10000", "10000", "service_ct"),
    ("10099", "10099", "service_cbn"),
    ("95588", "95588", "service"),
    ("4008123123", "4008123123", "service"),
    ("1065712345", "1065712345", "service"),
    ("110", "110", "service"),
    ("+447911123456", "00447911123456", "international"),
    ("0044 7911123456", "00447911123456", "international"),
]
MALFORMED = ["12312345678", "15412345678", "1381234567", "138123", "abc", "+86", "83001234"]


@pytest.mark.parametrize("written, national, network", CASES)
def test_numbers_as_switches_write_them_are_normalised_with_their_network(written, national, network):
    row = duckdb.connect().execute(f"SELECT n, {network_sql('n')} FROM (SELECT {normalised_sql('$raw')} AS n)",
                                   {"raw": written}).fetchall()[0]
    assert row == (national, network)


@pytest.mark.parametrize("written", MALFORMED)
def test_a_number_of_no_known_shape_has_no_network(written):
    number, network = duckdb.connect().execute(f"SELECT n, {network_sql('n')} FROM (SELECT {normalised_sql('$raw')} AS n)",
                                               {"raw": written}).fetchall()[0]
    assert network is None, (written, number)
