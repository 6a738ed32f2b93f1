"""MSISDN masking and the keyed pseudonym. Pure: no Django here."""

import hashlib
import hmac
import re

_BLOCK = 64  # SHA-256 block size in bytes, per RFC 2104


def mask_msisdn(msisdn: str) -> str:
    """138****1234: the form every page, API and admin shows."""
    if len(msisdn) < 8:
        return "*" * len(msisdn)
    return f"{msisdn[:3]}{'*' * (len(msisdn) - 7)}{msisdn[-4:]}"


# A run of seven or more digits (an MSISDN with or without +86, an IMEI, or a part of one) in free text.
_NUMBER_IN_TEXT = re.compile(r"\+?\d{7,}")


def mask_numbers(text: str) -> str:
    """Free text (a rejected row's reason) with every phone number or IMEI in it masked as mask_msisdn does:
    what admin and the API show of a bad file; the full report stays a file for analysts."""
    return _NUMBER_IN_TEXT.sub(lambda found: mask_msisdn(found.group()), text)


def pseudonym(msisdn: str, *, key: str) -> str:
    """Keyed HMAC-SHA256 of the MSISDN: stable for analytics, useless without the key."""
    return hmac.new(key.encode(), msisdn.encode(), hashlib.sha256).hexdigest()


def hmac_pads(key: str) -> tuple[bytes, bytes]:
    """The (inner, outer) padded keys of RFC 2104, so DuckDB can compute the same HMAC set-wise."""
    raw = key.encode()
    if len(raw) > _BLOCK:
        raw = hashlib.sha256(raw).digest()
    raw = raw.ljust(_BLOCK, b"\0")
    return bytes(b ^ 0x36 for b in raw), bytes(b ^ 0x5C for b in raw)


def pseudonym_sql(column: str) -> str:
    """DuckDB expression equal to pseudonym(column); bind the pads from hmac_pads as $ipad and $opad."""
    return f"sha256($opad::BLOB || unhex(sha256($ipad::BLOB || {column}::BLOB)))"
