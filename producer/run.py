"""A whole producer run: check the broker, publish with a progress bar, wait, summarise."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from config import Settings
from producer.live import watch
from producer.publish import SendPlan, SendResult, publish
from producer.tracking import Accounting, RunLedger
from tasks import connections
from tasks.app import make_app


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
    """Everything `producer send` does; raises BrokerUnreachable before sending anything."""
    url = settings.require_broker()
    connections.check_broker(url)
    app = make_app(settings)
    try:
        with progress_bar(console) as progress:
            sending = progress.add_task("sent", total=plan.total, rate="")

            def on_sent(n: int) -> None:
                progress.update(sending, advance=n)
                progress.update(sending, rate=_rate(progress, sending))

            sent = publish(app, settings, plan, on_sent)
            report = RunReport(plan, sent)
            if wait and not sent.interrupted:  # stopped by SIGINT/SIGTERM: report what went out
                _wait(settings, plan, report, timeout, progress)
        return report
    finally:
        app.close()


def _wait(settings: Settings, plan: SendPlan, report: RunReport, timeout: float, progress: Progress) -> None:
    ledger = RunLedger(connections.client(settings.require_broker()), plan.run_id)
    progress.stop()  # one live display at a time: the send bar stays printed, the live view takes over
    watch(ledger, {pool: plan.count for pool in plan.pools}, timeout, progress.console)
    ledger.drain_timings()
    queues = [settings.queue_for(pool) for pool in plan.pools]
    report.accounting = ledger.account(plan.total, queues)
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
