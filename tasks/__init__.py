"""Tasks of the lab: workloads (`work`), the Celery app factory (`app`), the run ledger.

The worker imports `tasks.celery_app`, which builds the app from the environment
and registers the tasks; importing this package itself reads nothing and connects
to nothing.
"""
