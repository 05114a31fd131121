"""The workloads' argument checks, in process (the queue itself is tested elsewhere)."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tasks import work
from tasks.work import MAX_SLEEP_SECONDS, MAX_SQUARE_WORK, MAX_SQUARE_X


def test_square_returns_the_square() -> None:
    assert work.square(12, work=1000) == 144
    assert work.square(-3, work=0) == 9


def test_sleep_reports_what_it_slept() -> None:
    result = work.sleep(0.01)
    assert result["requested"] == 0.01
    assert result["io_s"] >= 0.01


@given(st.integers(-MAX_SQUARE_X, MAX_SQUARE_X))
def test_square_accepts_every_integer_in_range(x: int) -> None:
    assert work.square(x, work=0) == x * x


@given(st.one_of(st.integers(max_value=-MAX_SQUARE_X - 1), st.integers(min_value=MAX_SQUARE_X + 1)))
def test_square_rejects_huge_x(x: int) -> None:
    with pytest.raises(ValueError, match="x must be between"):
        work.square(x, work=0)


@given(st.one_of(st.floats(), st.text(), st.booleans(), st.none(), st.lists(st.integers())))
def test_square_rejects_non_integers(x: object) -> None:
    with pytest.raises(TypeError, match="x must be an integer"):
        work.square(x, work=0)  # type: ignore[arg-type]


@given(st.one_of(st.integers(max_value=-1), st.integers(min_value=MAX_SQUARE_WORK + 1)))
def test_square_rejects_bad_work(size: int) -> None:
    with pytest.raises(ValueError, match="work must be between"):
        work.square(1, work=size)


@given(st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=MAX_SLEEP_SECONDS * 1.01),
                 st.just(math.nan), st.just(math.inf), st.just(-math.inf)))
def test_sleep_rejects_negative_nan_inf_and_huge(seconds: float) -> None:
    with pytest.raises(ValueError, match="seconds must be a finite number"):
        work.sleep(seconds)


@given(st.one_of(st.text(), st.booleans(), st.none(), st.dictionaries(st.text(), st.integers())))
def test_sleep_rejects_wrong_types(seconds: object) -> None:
    with pytest.raises(TypeError, match="seconds must be a number"):
        work.sleep(seconds)  # type: ignore[arg-type]
