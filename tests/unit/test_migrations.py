"""Schema migrations: a data mart made before migrations is upgraded in place, keeping every record; a newer
one is refused; several processes starting at once migrate it once."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from utils import datamart
from utils.datamart import migrations

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "datamart-before-migrations.sql"
DEPLOYMENT = "0b7c3f7e-0000-4000-8000-000000000001"


def _old_datamart(path: Path) -> str:
    connection = sqlite3.connect(path)
    connection.executescript(FIXTURE.read_text())
    connection.close()
    return f"sqlite:///{path}"


def test_a_data_mart_made_before_migrations_is_upgraded_with_every_record(tmp_path):
    url = _old_datamart(tmp_path / "old.sqlite")
    assert "alembic_version" not in sa.inspect(sa.create_engine(url)).get_table_names()
    engine = datamart.connect(url)
    assert migrations.current(engine) == migrations.head()
    payload = datamart.read_payload(engine, DEPLOYMENT)
    assert payload["transaction_id"].tolist() == [f"tx-{i:03d}" for i in range(12)]
    assert payload[["Age", "LoanAmount"]].notna().all().all()
    assert datamart.read_feedback(engine, DEPLOYMENT)["feedback_id"].tolist() == [f"fb-{i:03d}" for i in range(5)]
    [deployment] = datamart.read_deployments(engine)
    assert (deployment["deployment_id"], deployment["model_id"]) == (DEPLOYMENT, "credit-risk-v1")
    job = datamart.read_batch_job(engine, "job-001")
    assert (job["status"], job["rows_scored"], job["chunks_done"]) == ("succeeded", 4, 1)
    assert datamart.read_batch_chunks(engine, "job-001")["rows_read"].tolist() == [4]
    measured = datamart.read_measurements(engine, DEPLOYMENT)
    assert measured[["metric", "value"]].values.tolist() == [["auc_roc", 0.85]]
    assert len(datamart.read_window(engine, DEPLOYMENT)) == 12


def test_a_new_data_mart_gets_the_newest_schema(tmp_path):
    engine = datamart.connect(f"sqlite:///{tmp_path / 'new.sqlite'}")
    assert migrations.current(engine) == migrations.head()
    tables = set(sa.inspect(engine).get_table_names())
    assert tables >= {"deployments", "payload_records", "feedback_records", "batch_jobs", "measurements"}


def test_the_migrated_tables_are_the_ones_the_code_describes(tmp_path):
    """Every revision together builds exactly ``schema.metadata``: a column added in one place only fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from utils.datamart import schema

    engine = datamart.connect(f"sqlite:///{tmp_path / 'compare.sqlite'}")
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), schema.metadata)
    assert differences == []


def test_a_data_mart_newer_than_the_code_is_refused_untouched(tmp_path):
    url = f"sqlite:///{tmp_path / 'newer.sqlite'}"
    engine = sa.create_engine(url)
    migrations.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(migrations.SchemaError, match="'9999'.*newer version"):
        migrations.upgrade(engine)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "9999"


@pytest.mark.slow  # starts processes
def test_the_command_line_reports_and_upgrades(tmp_path):
    url = _old_datamart(tmp_path / "old.sqlite")
    run = [sys.executable, "-m", "utils.datamart"]
    before = subprocess.run([*run, "revision", "--url", url], capture_output=True, text=True, check=True)
    assert before.stdout.startswith("data mart revision None;")
    subprocess.run([*run, "upgrade", "--url", url], capture_output=True, text=True, check=True)
    after = subprocess.run([*run, "revision", "--url", url], capture_output=True, text=True, check=True)
    assert after.stdout.strip() == f"data mart revision {migrations.head()}; newest known {migrations.head()}"


@pytest.mark.slow  # starts processes
def test_processes_starting_at_once_migrate_a_new_data_mart_once(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.sqlite'}"
    code = f"from utils import datamart; datamart.connect({url!r}); print('ok')"
    starts = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) for _ in range(4)]
    assert [p.communicate(timeout=120)[0].strip() for p in starts] == ["ok"] * 4
    engine = sa.create_engine(url)
    with engine.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_the_pipeline_refuses_a_newer_data_mart_before_running_any_step(tmp_path, monkeypatch, capsys):
    from utils import pipeline

    monkeypatch.delenv(datamart.DATAMART_URL_ENV, raising=False)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'datamart.sqlite'}")
    migrations.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    assert pipeline.main(["--work-dir", str(tmp_path)]) == 2
    assert "schema revision '9999'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
