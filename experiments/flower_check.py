"""Cross-check the ledger's completed count against Flower's own event counter.

The lab's timings never come from Flower; Flower is a second, independent
witness. After each repetition the delta of `flower_events_total{type=
"task-succeeded", worker=...}` must equal the ledger's completed count. Flower
sees events a little later than the ledger, so the check waits (with a deadline)
for the counter to catch up before calling it a mismatch.
"""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families

from experiments.schema import FlowerRun
from stack.workers import Flower

CATCH_UP_S = 10.0


class FlowerCheck:
    def __init__(self, flower: Flower) -> None:
        self.flower = flower

    def succeeded(self, worker: str) -> float:
        """Flower's running total of task-succeeded events for one worker."""
        response = self.flower.get("/metrics")
        response.raise_for_status()
        return succeeded_in(response.text, worker)

    def compare(self, worker: str, before: float, completed: int) -> FlowerRun:
        deadline = time.monotonic() + CATCH_UP_S
        while True:
            seen = int(self.succeeded(worker) - before)
            if seen >= completed or time.monotonic() > deadline:
                return {"flower_succeeded": seen, "ledger_completed": completed, "match": seen == completed}
            time.sleep(0.2)


def succeeded_in(metrics_text: str, worker: str) -> float:
    """Sum of task-succeeded events of `worker` over all task names, from Prometheus text."""
    total = 0.0
    for family in text_string_to_metric_families(metrics_text):
        if family.name != "flower_events":
            continue
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "flower_events_total" and labels.get("type") == "task-succeeded" \
                    and labels.get("worker") == worker:
                total += sample.value
    return total
