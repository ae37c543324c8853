"""env_positive_int: the one parser of positive-integer environment settings."""

from __future__ import annotations

import pytest

from freqlens.errors import DataError, FreqlensError
from freqlens.utils.env import env_positive_int


@pytest.mark.parametrize("text, expected", [("", 7), ("   ", 7), ("3", 3), (" 12 ", 12)])
def test_unset_blank_and_valid_values(monkeypatch, text, expected):
    monkeypatch.setenv("FREQLENS_TEST_N", text)
    assert env_positive_int("FREQLENS_TEST_N", 7) == expected
    monkeypatch.delenv("FREQLENS_TEST_N")
    assert env_positive_int("FREQLENS_TEST_N", 7) == 7 and env_positive_int("FREQLENS_TEST_N") is None


@pytest.mark.parametrize("text", ["0", "-2", "4.0", "many", "1e3"])
def test_anything_else_is_one_clear_error_of_the_given_type(monkeypatch, text):
    monkeypatch.setenv("FREQLENS_TEST_N", text)
    with pytest.raises(FreqlensError, match=f"FREQLENS_TEST_N must be a positive integer, got '{text}'"):
        env_positive_int("FREQLENS_TEST_N", 1)
    with pytest.raises(DataError, match=r"positive integer \(bytes\)"):
        env_positive_int("FREQLENS_TEST_N", 1, DataError, "bytes")
