import duckdb

from tagging.privacy import hmac_pads, mask_msisdn, pseudonym, pseudonym_sql


def test_msisdn_is_masked_as_operators_show_it():
    assert mask_msisdn("13812341234") == "138****1234"
    assert mask_msisdn("8613812341234") == "861******1234"
    assert mask_msisdn("12345") == "*****"


def test_pseudonym_is_a_keyed_hmac_and_duckdb_computes_the_same():
    key = "a-key-of-some-length-" * 4  # longer than a SHA-256 block, so it is hashed first
    numbers = ["13812341234", "15900000001"]
    ipad, opad = hmac_pads(key)
    sql = f"SELECT {pseudonym_sql('m')} FROM (SELECT unnest($numbers::VARCHAR[]) AS m)"
    computed = [r[0] for r in duckdb.execute(sql, {"numbers": numbers, "ipad": ipad, "opad": opad}).fetchall()]
    assert computed == [pseudonym(n, key=key) for n in numbers]
    assert pseudonym("13812341234", key=key) != pseudonym("13812341234", key=key + "x")
