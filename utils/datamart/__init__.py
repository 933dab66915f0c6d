"""The data mart: a SQL database of deployments, scored payload and feedback records, batch jobs and measurements.

It stands in for the hosted PostgreSQL data mart of the original workshop. Every read and write of its tables
lives in this package, behind functions named by intent (``insert_payload``, ``read_window``,
``commit_batch_chunk``); the rest of the project never writes SQL. Its schema is under Alembic migrations
(:mod:`utils.datamart.migrations`): a process brings a data mart to the newest revision when it first connects.

Times are stored in UTC; the DataFrames carry timezone-aware UTC timestamps.
"""

from typing import TYPE_CHECKING

from utils.lazy import lazy_exports

#: Each public name and the module defining it, imported when the name is first used (see :mod:`utils.lazy`).
_EXPORTS = {
    "DATAMART_URL_ENV": "utils.datamart.engine",
    "DatamartUnavailable": "utils.datamart.engine",
    "PAYLOAD_COMMIT_ROWS": "utils.datamart.batch_jobs",
    "SQLITE_BUSY_TIMEOUT": "utils.datamart.engine",
    "SchemaError": "utils.datamart.migrations",
    "WindowAlreadyRan": "utils.datamart.alerting",
    "WindowRead": "utils.datamart.columnar",
    "check": "utils.datamart.engine",
    "check_identity": "utils.datamart.engine",
    "commit_batch_chunk": "utils.datamart.batch_jobs",
    "connect": "utils.datamart.journal",
    "datamart_url": "utils.datamart.engine",
    "insert_approval": "utils.datamart.lifecycle",
    "insert_batch_job": "utils.datamart.batch_jobs",
    "insert_evaluation": "utils.datamart.lifecycle",
    "insert_feedback": "utils.datamart.records",
    "insert_measurements": "utils.datamart.measurements",
    "insert_notification": "utils.datamart.alerting",
    "insert_payload": "utils.datamart.records",
    "insert_payload_now": "utils.datamart.records",
    "new_id": "utils.datamart.engine",
    "read_approvals": "utils.datamart.lifecycle",
    "read_batch_chunks": "utils.datamart.batch_jobs",
    "read_batch_job": "utils.datamart.batch_jobs",
    "read_batch_jobs": "utils.datamart.batch_jobs",
    "read_deployment": "utils.datamart.deployments",
    "read_deployment_history": "utils.datamart.deployments",
    "read_deployments": "utils.datamart.deployments",
    "read_evaluation": "utils.datamart.lifecycle",
    "read_evaluations": "utils.datamart.lifecycle",
    "read_feedback": "utils.datamart.records",
    "read_latest_measurements": "utils.datamart.measurements",
    "read_measurements": "utils.datamart.measurements",
    "read_monitor_config": "utils.datamart.lifecycle",
    "read_monitor_runs": "utils.datamart.alerting",
    "read_notifications": "utils.datamart.alerting",
    "read_payload": "utils.datamart.records",
    "read_transaction": "utils.datamart.records",
    "read_verdicts": "utils.datamart.alerting",
    "read_window": "utils.datamart.columnar",
    "remove_deployment": "utils.datamart.deployments",
    "restamp": "utils.datamart.records",
    "store_batch_payload": "utils.datamart.batch_jobs",
    "store_scheduled_window": "utils.datamart.alerting",
    "update_batch_job": "utils.datamart.batch_jobs",
    "update_notification": "utils.datamart.alerting",
    "upsert_deployment": "utils.datamart.deployments",
    "without_catch_up": "utils.datamart.journal",
    "write_monitor_config": "utils.datamart.lifecycle",
    "writers_in_turn": "utils.datamart.engine",
}
__all__ = [
    "DATAMART_URL_ENV",
    "DatamartUnavailable",
    "PAYLOAD_COMMIT_ROWS",
    "SQLITE_BUSY_TIMEOUT",
    "SchemaError",
    "WindowAlreadyRan",
    "WindowRead",
    "check",
    "check_identity",
    "commit_batch_chunk",
    "connect",
    "datamart_url",
    "insert_approval",
    "insert_batch_job",
    "insert_evaluation",
    "insert_feedback",
    "insert_measurements",
    "insert_notification",
    "insert_payload",
    "insert_payload_now",
    "new_id",
    "read_approvals",
    "read_batch_chunks",
    "read_batch_job",
    "read_batch_jobs",
    "read_deployment",
    "read_deployment_history",
    "read_deployments",
    "read_evaluation",
    "read_evaluations",
    "read_feedback",
    "read_latest_measurements",
    "read_measurements",
    "read_monitor_config",
    "read_monitor_runs",
    "read_notifications",
    "read_payload",
    "read_transaction",
    "read_verdicts",
    "read_window",
    "remove_deployment",
    "restamp",
    "store_batch_payload",
    "store_scheduled_window",
    "update_batch_job",
    "update_notification",
    "upsert_deployment",
    "without_catch_up",
    "write_monitor_config",
    "writers_in_turn",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from utils.datamart.alerting import (
        WindowAlreadyRan,
        insert_notification,
        read_monitor_runs,
        read_notifications,
        read_verdicts,
        store_scheduled_window,
        update_notification,
    )
    from utils.datamart.batch_jobs import (
        PAYLOAD_COMMIT_ROWS,
        commit_batch_chunk,
        insert_batch_job,
        read_batch_chunks,
        read_batch_job,
        read_batch_jobs,
        store_batch_payload,
        update_batch_job,
    )
    from utils.datamart.columnar import WindowRead, read_window
    from utils.datamart.deployments import (
        read_deployment,
        read_deployment_history,
        read_deployments,
        remove_deployment,
        upsert_deployment,
    )
    from utils.datamart.engine import (
        DATAMART_URL_ENV,
        SQLITE_BUSY_TIMEOUT,
        DatamartUnavailable,
        check,
        check_identity,
        datamart_url,
        new_id,
        writers_in_turn,
    )
    from utils.datamart.journal import connect, without_catch_up
    from utils.datamart.lifecycle import (
        insert_approval,
        insert_evaluation,
        read_approvals,
        read_evaluation,
        read_evaluations,
        read_monitor_config,
        write_monitor_config,
    )
    from utils.datamart.measurements import insert_measurements, read_latest_measurements, read_measurements
    from utils.datamart.migrations import SchemaError
    from utils.datamart.records import (
        insert_feedback,
        insert_payload,
        insert_payload_now,
        read_feedback,
        read_payload,
        read_transaction,
        restamp,
    )
