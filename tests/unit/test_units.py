"""Units: parsed once into SI floats; decimal is decimal, binary is binary; bare numbers are errors."""

import pytest

from hwmodels.dtype import get_dtype, DTypeError
from hwmodels.units import UnitError, parse_quantity


@pytest.mark.parametrize("text,dim,expected", [
    ("3.35 TB/s", "bandwidth", 3.35e12),
    ("80 GiB", "bytes", 80 * 2**30),
    ("80 GB", "bytes", 80e9),
    ("228 KiB", "bytes", 228 * 1024),
    ("989 TFLOP/s", "rate", 989e12),
    ("1979 TOP/s", "rate", 1979e12),
    ("2 us", "time", 2e-6),
    ("4 ms", "time", 4e-3),
    ("700 W", "power", 700.0),
    ("2.49 USD/h", "money_rate", 2.49 / 3600),
    ("400 Gb/s", "bandwidth", 50e9),
    ("1.83 GHz", "frequency", 1.83e9),
    ("1e3 GB/s", "bandwidth", 1e12),
    ("814 mm2", "area", 814.0),
    ("0.5 pJ/FLOP", "energy_per_flop", 0.5e-12),
])
def test_parse(text, dim, expected):
    assert parse_quantity(text, dim) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("text,dim,fragment", [
    ("3.35 TB", "bandwidth", "'TB' is a unit of bytes"),
    (3.35, "bandwidth", "bare number"),
    ("3.35", "bandwidth", "has no unit"),
    ("fast", "bandwidth", "cannot read"),
    ("80 GiB/s", "bytes", "is a unit of bandwidth"),
    (None, "time", "expected a time"),
])
def test_errors(text, dim, fragment):
    with pytest.raises(UnitError, match=fragment):
        parse_quantity(text, dim)


def test_decimal_and_binary_are_kept_apart():
    assert parse_quantity("1 GiB", "bytes") / parse_quantity("1 GB", "bytes") == pytest.approx(1.073741824)


def test_dtypes():
    assert get_dtype("bf16").bytes == 2
    assert get_dtype("bfloat16").bytes == 2
    assert get_dtype("fp8").bytes == 1
    assert get_dtype("int4").bytes == 0.5
    # int4 with a 16-bit scale per group of 128: 4 + 16/128 bits per element
    assert get_dtype("int4").bytes_per_element(128) == pytest.approx((4 + 16 / 128) / 8)
    with pytest.raises(DTypeError):
        get_dtype("fp9")
