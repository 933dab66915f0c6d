"""The data mart: a SQL database of deployments, scored payload and feedback records, batch jobs and measurements.

It stands in for the hosted PostgreSQL data mart of the original workshop. Every read and write of its tables
lives in this package, behind functions named by intent (``insert_payload``, ``read_window``,
``commit_batch_chunk``); the rest of the project never writes SQL. Its schema is under Alembic migrations
(:mod:`utils.datamart.migrations`): a process brings a data mart to the newest revision when it first connects.

Times are stored in UTC; the DataFrames carry timezone-aware UTC timestamps.
"""

from utils.datamart.batch_jobs import (
    commit_batch_chunk,
    insert_batch_job,
    read_batch_chunks,
    read_batch_job,
    read_batch_jobs,
    update_batch_job,
)
from utils.datamart.deployments import (
    read_deployment,
    read_deployment_history,
    read_deployments,
    remove_deployment,
    upsert_deployment,
)
from utils.datamart.engine import DATAMART_URL_ENV, SQLITE_BUSY_TIMEOUT, check, connect, datamart_url, new_id
from utils.datamart.measurements import insert_measurements, read_measurements
from utils.datamart.migrations import SchemaError
from utils.datamart.records import (
    insert_feedback,
    insert_payload,
    read_feedback,
    read_payload,
    read_transaction,
    read_window,
    restamp,
)

__all__ = [
    "DATAMART_URL_ENV",
    "SQLITE_BUSY_TIMEOUT",
    "SchemaError",
    "check",
    "commit_batch_chunk",
    "connect",
    "datamart_url",
    "insert_batch_job",
    "insert_feedback",
    "insert_measurements",
    "insert_payload",
    "new_id",
    "read_batch_chunks",
    "read_batch_job",
    "read_batch_jobs",
    "read_deployment",
    "read_deployments",
    "read_feedback",
    "read_measurements",
    "read_payload",
    "read_transaction",
    "read_window",
    "remove_deployment",
    "restamp",
    "update_batch_job",
    "upsert_deployment",
]

from utils.datamart.batch_jobs import PAYLOAD_COMMIT_ROWS, store_batch_payload  # noqa: E402

__all__ += ["PAYLOAD_COMMIT_ROWS", "store_batch_payload"]

from utils.datamart.engine import DatamartUnavailable, check_identity  # noqa: E402

__all__ += ["DatamartUnavailable", "check_identity"]

from utils.datamart.alerting import (  # noqa: E402
    WindowAlreadyRan,
    insert_notification,
    read_monitor_runs,
    read_notifications,
    read_verdicts,
    store_scheduled_window,
    update_notification,
)

__all__ += [
    "WindowAlreadyRan",
    "insert_notification",
    "read_monitor_runs",
    "read_notifications",
    "read_verdicts",
    "store_scheduled_window",
    "update_notification",
]

from utils.datamart.lifecycle import (  # noqa: E402
    insert_approval,
    insert_evaluation,
    read_approvals,
    read_evaluation,
    read_evaluations,
    read_monitor_config,
    write_monitor_config,
)

__all__ += [
    "insert_approval",
    "insert_evaluation",
    "read_approvals",
    "read_deployment_history",
    "read_evaluation",
    "read_evaluations",
    "read_monitor_config",
    "write_monitor_config",
]

from utils.datamart.measurements import read_latest_measurements  # noqa: E402

__all__ += ["read_latest_measurements"]
