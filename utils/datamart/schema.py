"""The data mart's tables, as of the newest schema revision (``migrations/versions``).

Alembic revisions create and change these tables in a data mart; this module describes the result, for the
queries of the other modules of this package. A change here comes with a new revision.
"""

from __future__ import annotations

import sqlalchemy as sa

from utils.data import CATEGORIES, FEATURES

metadata = sa.MetaData()


def input_columns() -> list[sa.Column]:
    """One column per field of the credit contract (revision 0006), in the contract's order: categories as text,
    numbers as integers. A record of the credit contract keeps its inputs here and NULL in ``inputs``; a record of
    a declared schema keeps them in ``inputs`` and NULL here."""
    return [sa.Column(name, sa.String(50) if name in CATEGORIES else sa.Integer) for name in FEATURES]


def packed_features() -> sa.Column:
    """The same inputs as one fixed-width binary row (revision 0007; :mod:`utils.datamart.packed`), which a window
    reads in place of the typed columns; NULL for a record of a declared schema, one stored before the revision, or
    one with a number outside 32 bits."""
    return sa.Column("packed_features", sa.LargeBinary)


deployments = sa.Table(
    "deployments",
    metadata,
    sa.Column("deployment_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("space", sa.String(20), nullable=False),
    sa.Column("model_id", sa.String(200), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("name", "space", name="uq_deployment_name_space"),
)

payload_records = sa.Table(
    "payload_records",
    metadata,
    sa.Column("record_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("transaction_id", sa.String(64), nullable=False, unique=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("model_id", sa.String(200), nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    # The inputs as a JSON object, for records of declared schemas; NULL when they are in the typed columns.
    sa.Column("inputs", sa.JSON),
    *input_columns(),
    packed_features(),
    sa.Column("prediction", sa.String(50), nullable=False),
    sa.Column("probability_no_risk", sa.Float, nullable=False),
    sa.Column("probability_risk", sa.Float, nullable=False),
    # Fields inside the contract but outside the training data's observed ranges; NULL when none (revision 0002).
    sa.Column("out_of_range", sa.JSON),
    sa.Index("ix_payload_deployment_time", "deployment_id", "scored_at"),
)

feedback_records = sa.Table(
    "feedback_records",
    metadata,
    sa.Column("record_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("feedback_id", sa.String(64), nullable=False, unique=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("inputs", sa.JSON),  # as in payload_records: NULL when the inputs are in the typed columns
    *input_columns(),
    packed_features(),
    sa.Column("label", sa.String(50), nullable=False),
    # The payload record this feedback labels, when the sender names it (revision 0002).
    sa.Column("transaction_id", sa.String(64)),
    sa.Index("ix_feedback_deployment_time", "deployment_id", "recorded_at"),
    sa.Index("ix_feedback_transaction", "transaction_id"),
)

# A batch job and the chunks of it that are done. A chunk's row, its payload records and the job's counters are
# written in one transaction, so that a job killed at any moment resumes without losing or repeating a chunk.
batch_jobs = sa.Table(
    "batch_jobs",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("model_id", sa.String(200), nullable=False),
    sa.Column("deployment_id", sa.String(64)),
    sa.Column("input_path", sa.Text, nullable=False),
    sa.Column("output_path", sa.Text, nullable=False),
    sa.Column("rejects_path", sa.Text, nullable=False),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("rows_total", sa.BigInteger),
    sa.Column("rows_read", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows_scored", sa.BigInteger, nullable=False, default=0),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False, default=0),
    sa.Column("chunks_done", sa.Integer, nullable=False, default=0),
    sa.Column("seconds", sa.Float, nullable=False, default=0.0),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("error", sa.Text),
    sa.Index("ix_batch_jobs_created", "created_at"),
)

batch_job_chunks = sa.Table(
    "batch_job_chunks",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("chunk_index", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("first_row", sa.BigInteger, nullable=False),
    sa.Column("rows_read", sa.BigInteger, nullable=False),
    sa.Column("rows_scored", sa.BigInteger, nullable=False),
    sa.Column("rows_rejected", sa.BigInteger, nullable=False),
    sa.Column("output_bytes", sa.BigInteger, nullable=False),
    sa.Column("rejects_bytes", sa.BigInteger, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per metric that a monitor computed over an evaluation window: its value, the threshold it is held to and
# whether it breached it. ``breached`` is NULL when there is no verdict: too few records in the window, or a metric
# without a threshold. ``subject`` names what the metric is about (a protected group, a feature), NULL for the window.
measurements = sa.Table(
    "measurements",
    metadata,
    sa.Column("measurement_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("evaluation_id", sa.String(64), nullable=False),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("monitor", sa.String(30), nullable=False),
    sa.Column("metric", sa.String(60), nullable=False),
    sa.Column("subject", sa.String(100)),
    sa.Column("value", sa.Float),
    sa.Column("threshold", sa.Float),
    sa.Column("breached", sa.Boolean),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("window_start", sa.DateTime(timezone=True)),
    sa.Column("window_end", sa.DateTime(timezone=True)),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_measurements_deployment_window", "deployment_id", "window_start"),
)

# The model's life across spaces (revision 0003). One row per period during which a model version served a
# deployment: replacing the deployment's model closes the open period (``ended_at``) and opens the next; removing
# the deployment closes it. ``deployed_by`` and ``reason`` say who opened the period and why, when known.
deployment_history = sa.Table(
    "deployment_history",
    metadata,
    sa.Column("history_id", sa.String(64), primary_key=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("space", sa.String(20), nullable=False),
    sa.Column("model_id", sa.String(200), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("ended_at", sa.DateTime(timezone=True)),
    sa.Column("deployed_by", sa.String(64)),
    sa.Column("reason", sa.Text),
    sa.Index("ix_history_deployment_start", "deployment_id", "started_at"),
    sa.Index("ix_history_model", "model_id"),
)

# The monitors' configuration of one deployment (thresholds, minimum records, protected groups), a JSON document
# validated by ``utils.lifecycle`` before it is written. A deployment without a row uses the monitors' defaults.
monitor_configs = sa.Table(
    "monitor_configs",
    metadata,
    sa.Column("deployment_id", sa.String(64), primary_key=True),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("updated_by", sa.String(64)),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

# A risk evaluation of the model version a deployment served, optionally against a baseline (a challenger or the
# champion): its verdict, its summary and its reports (paths relative to the working directory, named by its id).
evaluations = sa.Table(
    "evaluations",
    metadata,
    sa.Column("evaluation_id", sa.String(64), primary_key=True),
    sa.Column("model_id", sa.String(200), nullable=False),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("space", sa.String(20), nullable=False),
    sa.Column("baseline_model_id", sa.String(200)),
    sa.Column("verdict", sa.String(10), nullable=False),
    sa.Column("summary", sa.JSON, nullable=False),
    sa.Column("report_html", sa.String(300), nullable=False),
    sa.Column("report_json", sa.String(300), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_evaluations_model", "model_id", "created_at"),
    sa.Index("ix_evaluations_deployment", "deployment_id", "created_at"),
)

# A decision on one evaluation of one model version. Rows are never changed or deleted: a newer decision on the
# same evaluation supersedes the older ones (the highest ``record_id`` counts).
approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("record_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("approval_id", sa.String(64), nullable=False, unique=True),
    sa.Column("model_id", sa.String(200), nullable=False),
    sa.Column("evaluation_id", sa.String(64), nullable=False),
    sa.Column("approver", sa.String(64), nullable=False),
    sa.Column("decision", sa.String(10), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_approvals_evaluation", "evaluation_id"),
    sa.Index("ix_approvals_model", "model_id"),
)

# Alerts that reach people (revision 0004). One row per notification of one receiver: an alert that began or
# recovered in a window. ``dedupe_key`` (a hash of deployment, kind, monitor, metric, subject, window and receiver)
# is unique, so the same change is never notified twice, even when its window is evaluated again.
notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("notification_id", sa.String(64), primary_key=True),
    sa.Column("dedupe_key", sa.String(64), nullable=False, unique=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("evaluation_id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(10), nullable=False),
    sa.Column("monitor", sa.String(30), nullable=False),
    sa.Column("metric", sa.String(60), nullable=False),
    sa.Column("subject", sa.String(100)),
    sa.Column("receiver", sa.String(300), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("status", sa.String(10), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("last_error", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_notifications_deployment", "deployment_id", "created_at"),
    sa.Index("ix_notifications_status", "status"),
)

# The windows the scheduler evaluated, one row per monitor and window, written in the transaction that stores the
# window's measurements (revision 0004): a window is recorded exactly when its measurements are.
monitor_runs = sa.Table(
    "monitor_runs",
    metadata,
    sa.Column("deployment_id", sa.String(64), primary_key=True),
    sa.Column("monitor", sa.String(30), primary_key=True),
    sa.Column("window_start", sa.DateTime(timezone=True), primary_key=True),
    sa.Column("window_end", sa.DateTime(timezone=True), nullable=False),
    sa.Column("evaluation_id", sa.String(64), nullable=False),
    sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
)

# A deployment to monitor, served here or by another engine (revision 0005): its engine, the URL that scores it
# (NULL: none given), and ``spec``, the JSON document of :class:`utils.subscriptions.Subscription` (input schema,
# classes and favourable class, protected attributes). ``deployment_id`` names this project's own deployment when
# the subscription is one. Its payload and feedback records carry the subscription id as their ``deployment_id``.
subscriptions = sa.Table(
    "subscriptions",
    metadata,
    sa.Column("subscription_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("engine", sa.String(20), nullable=False),
    sa.Column("scoring_url", sa.String(500)),
    sa.Column("deployment_id", sa.String(64), unique=True),
    sa.Column("spec", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

# One row per scoring or payload-logging request (revision 0005), for the performance monitor: how many records it
# carried and how many were accepted, how long it took, and, when refused, why (``reason``: the rule at fault) with
# the rejected rows. Rejected records are counted here, never stored as payload.
request_log = sa.Table(
    "request_log",
    metadata,
    sa.Column("request_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("deployment_id", sa.String(64), nullable=False),
    sa.Column("endpoint", sa.String(20), nullable=False),
    sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("status", sa.Integer, nullable=False),
    sa.Column("records", sa.Integer, nullable=False),
    sa.Column("rejected_rows", sa.Integer, nullable=False),
    sa.Column("reason", sa.String(100)),
    sa.Index("ix_request_log_deployment_time", "deployment_id", "received_at"),
)

# How far each payload journal file (``<data mart file>.journal/``, :mod:`utils.datamart.journal`) is ingested into
# ``payload_records``, in bytes (revision 0008): updated in the transaction that inserts its records, so that a
# record is ingested exactly once; the row goes with the file once it is fully ingested and its writer is gone.
payload_journal_offsets = sa.Table(
    "payload_journal_offsets",
    metadata,
    sa.Column("file_name", sa.String(100), primary_key=True),
    sa.Column("ingested_bytes", sa.BigInteger, nullable=False),
)
