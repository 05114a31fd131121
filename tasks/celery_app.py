"""The worker's Celery app: every workload of the catalogue, under stable names (`tasks.square`...).

`celery -A tasks.celery_app worker` imports this module in the worker and in each prefork child,
so the tasks are registered here, from `tasks.workloads`. Importing it reads settings from the
environment but opens no connection. Producers send tasks by name and never import it. The test
and claim tasks (`tasks.probes`) are registered only when `LAB_PROBES=true`, and `tasks.advised`
(the user's own callable, `lab advise`) only when `LAB_ADVISE_TARGET` names one.

It also runs on the free-threaded interpreter (the `threads-ft` pool): everything it imports must
support running without the GIL (pyproject.toml's core dependencies, tools/freethreaded.sh).
"""

from __future__ import annotations

from config import Settings
from tasks import advised, interpreter, latency, ledger, probes, transport
from tasks.app import make_app
from tasks.workloads import WORKLOADS

settings = Settings.from_env()
app = make_app(settings)
ledger.install(app)
transport.install(app)  # workers take messages atomically: none lost between pop and ack record
for _workload in WORKLOADS.values():
    app.task(name=_workload.task_name)(_workload.function)
if settings.probes:
    probes.register(app)
if settings.advise_target:
    advised.register(app, settings.advise_target)
latency.use_server(settings.latency_server)  # where `mixed` tasks with socket I/O wait
interpreter.install(app)  # `inspect stats` says which Python; a threads-ft worker refuses a GIL
