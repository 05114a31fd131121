"""A whole producer run: check the broker, publish with a progress bar, wait, summarise."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from config import Settings
from producer.live import watch
from producer.publish import SendPlan, SendResult, publish
from tasks import connections
from tasks.ledger import Accounting, RunLedger


@dataclass
class RunReport:
    plan: SendPlan
    sent: SendResult
    accounting: Accounting | None = None
    throughput_per_s: float | None = None
    elapsed_s: float | None = None
    drain_per_s: float | None = None
    task_cpu_s: float | None = None  # mean CPU time of one task in the worker

    def as_dict(self) -> dict[str, object]:
        return {
            "run_id": self.plan.run_id,
            "workload": self.plan.workload,
            "pools": list(self.plan.pools),
            "sent": self.sent.total,
            "sent_per_pool": self.sent.sent,
            "enqueue_per_s": round(self.sent.rate_per_s, 1),
            **(self.accounting.as_dict() if self.accounting else {}),
            "elapsed_s": self.elapsed_s,
            "throughput_per_s": self.throughput_per_s,
        }


def progress_bar(console: Console) -> Progress:
    """A bar with done/total, rate and ETA (rich computes the speed from updates)."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
        console=console, transient=False,
    )  # fmt: skip


def _rate(progress: Progress, task_id: int) -> str:
    speed = progress.tasks[task_id].speed
    return f"{speed:,.0f}/s" if speed else "-/s"


def run(settings: Settings, plan: SendPlan, wait: bool, timeout: float, console: Console) -> RunReport:
    """Everything `producer send` does; raises BrokerUnreachable before sending anything.

    While waiting, Redis may restart: the wait retries; if it stays gone for longer than
    `settings.broker_wait_s`, `tasks.ledger.BrokerLost` says what was sent and done.
    """
    url = settings.require_broker()
    connections.check_broker(url)
    with connections.client_app(settings) as app, progress_bar(console) as progress:
        sending = progress.add_task("sent", total=plan.total, rate="")

        def on_sent(n: int) -> None:
            progress.update(sending, advance=n)
            progress.update(sending, rate=_rate(progress, sending))

        sent = publish(app, settings, plan, on_sent)
        report = RunReport(plan, sent)
        if wait and not sent.interrupted:  # stopped by SIGINT/SIGTERM: report what went out
            progress.stop()  # one live display at a time: the send bar stays printed, the live view takes over
            _wait(settings, report, timeout, progress.console)
    return report


def _wait(settings: Settings, report: RunReport, timeout: float, console: Console) -> None:
    plan = report.plan
    with connections.redis_client(settings.require_broker()) as client:
        ledger = RunLedger(client, plan.run_id)
        watch(ledger, {pool: plan.count for pool in plan.pools}, timeout, console, settings.broker_wait_s)
        ledger.drain_timings()
        report.accounting = ledger.account(plan.total, [settings.queue_for(pool) for pool in plan.pools])
    timings = ledger.timings
    if timings.count:
        report.elapsed_s = timings.elapsed_since_sent()
        report.throughput_per_s = timings.count / report.elapsed_s if report.elapsed_s else None
        report.drain_per_s = timings.drain_rate()
        report.task_cpu_s = timings.mean_task_cpu_s()


def _counts(acc: Accounting) -> list[str]:
    return [str(n) for n in (acc.completed, acc.failed, acc.queued, acc.lost, acc.duplicated)]


def summary_table(report: RunReport) -> Table:
    table = Table(title=f"run {report.plan.run_id}: {report.plan.workload} on {', '.join(report.plan.pools)}")
    for column in ("sent", "done", "failed", "queued", "lost", "duplicated", "elapsed s", "tasks/s", "enqueue/s"):
        table.add_column(column, justify="right")
    acc = report.accounting
    table.add_row(
        str(report.sent.total),
        *(_counts(acc) if acc else ["-"] * 5),
        f"{report.elapsed_s:.2f}" if report.elapsed_s else "-",
        f"{report.throughput_per_s:,.1f}" if report.throughput_per_s else "-",
        f"{report.sent.rate_per_s:,.0f}",
    )
    return table
