"""Duplicates go to the fault that caught their task in flight, else to the fault of their window."""

from __future__ import annotations

from stack.compose.faults import Fault, attribute
from tasks.ledger import Duplicate


def fault(name: str, dups_from: int, dups_to: int | None, in_flight: tuple[str, ...] = ()) -> Fault:
    return Fault(name, ("threads@a",), done_at=0, dups_from=dups_from, dups_to=dups_to, in_flight=set(in_flight))


def test_in_flight_wins_over_the_window_and_the_latest_catch_wins() -> None:
    partition = fault("partition", 0, 2, ("t1",))
    restart = fault("broker restart", 2, None, ("t3", "t1"))
    duplicates = [Duplicate(task, "threads@a", "threads@b") for task in ("t0", "t3", "t2", "t1")]
    mine, unexplained = attribute([partition, restart], duplicates)
    assert [[d.task_id for d in dups] for dups in mine] == [["t0"], ["t3", "t2", "t1"]]
    assert unexplained == []


def test_a_duplicate_before_any_fault_is_left_unexplained() -> None:
    late = fault("host loss", 1, None)
    mine, unexplained = attribute([late], [Duplicate("t0", "a", "b"), Duplicate("t1", "a", "b")])
    assert [d.task_id for d in mine[0]] == ["t1"]
    assert [d.task_id for d in unexplained] == ["t0"]
