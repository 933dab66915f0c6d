"""Fixtures shared by every test folder.

A test module marked ``datamarts`` runs twice: on a SQLite data mart, and on a PostgreSQL database of its own where
``$CREDIT_TEST_POSTGRES_URL`` names a server on which the tests may create databases (``.ci/run`` starts Debian's
PostgreSQL and sets it; without it, the second pass is skipped). The ``workspace``, ``work`` and ``datamart_url``
fixtures follow the pass's kind (``datamart_kind``); on PostgreSQL, ``$CREDIT_DATAMART_URL`` names their database,
so that code finding the data mart from a working directory finds it too.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from threadpoolctl import threadpool_limits

from utils import datamart, lifecycle
from utils.config import layout
from utils.deployment import delete_deployment, deploy
from utils.workspace import Workspace, prepare_workspace


def _approve_for_production(workspace: Workspace, model_id: str) -> None:
    """Give ``model_id`` a passed, approved pre-prod evaluation (its pre-prod deployment removed afterwards)."""
    where = {"engine": workspace.engine, "work": workspace.work}
    candidate = deploy(model_id, name="credit-risk-candidate", space="preprod", registry=workspace.registry, **where)
    evaluated = lifecycle.record_evaluation(candidate.deployment_id, verdict="passed", summary={}, **where)
    lifecycle.approve(model_id, evaluated.evaluation_id, approver="test-fixture", reason="fixture", **where)
    delete_deployment(candidate.deployment_id, engine=workspace.engine, registry=workspace.registry)


#: The PostgreSQL server of the tests' second data mart pass: a URL of a role that may create databases.
POSTGRES_URL_ENV = "CREDIT_TEST_POSTGRES_URL"


def pytest_generate_tests(metafunc):
    """Tests marked ``datamarts`` that use a data mart fixture run once per kind of data mart."""
    if metafunc.definition.get_closest_marker("datamarts") and "datamart_kind" in metafunc.fixturenames:
        no_server = pytest.mark.skipif(not os.environ.get(POSTGRES_URL_ENV), reason=f"${POSTGRES_URL_ENV} not set")
        kinds = ["sqlite", pytest.param("postgresql", marks=no_server)]
        metafunc.parametrize("datamart_kind", kinds, indirect=True, scope="module")


@pytest.fixture(scope="module")
def datamart_kind(request) -> str:
    """The kind of data mart of this pass: ``sqlite``, or ``postgresql`` in the second pass of a ``datamarts``
    module."""
    return getattr(request, "param", "sqlite")


#: The database on the PostgreSQL test server that new test databases copy: empty, migrated to the newest revision
#: (made once per test session, named by it, dropped at its end).
_TEMPLATE = f"credit_template_{uuid.uuid4().hex[:12]}"


def _admin() -> sa.Engine:
    return sa.create_engine(os.environ[POSTGRES_URL_ENV], isolation_level="AUTOCOMMIT")


def _database_url(admin: sa.Engine, name: str) -> str:
    return admin.url.set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _postgres_template() -> Iterator[str]:
    """The name of the session's migrated template database (copying it is much faster than migrating anew)."""
    admin = _admin()
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{_TEMPLATE}"'))
    template = sa.create_engine(_database_url(admin, _TEMPLATE))
    datamart.migrations.upgrade(template)
    template.dispose()  # a template database may have no connection when it is copied
    yield _TEMPLATE
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE "{_TEMPLATE}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def postgres_database(template: str = "template1") -> Iterator[str]:
    """The URL of a new database on the test server, a copy of ``template``; dropped afterwards (with any
    connection left open)."""
    admin = _admin()
    name = f"credit_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        yield _database_url(admin, name)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a new, empty database on the PostgreSQL test server (the test is skipped without a server)."""
    if not os.environ.get(POSTGRES_URL_ENV):
        pytest.skip(f"${POSTGRES_URL_ENV} not set")
    with postgres_database() as url:
        yield url


@contextmanager
def new_datamart(kind: str, work: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):
    """The URL of a new, empty data mart of ``kind`` that code finds from the working directory ``work``: its
    SQLite file, or a PostgreSQL database (at the newest revision) that ``$CREDIT_DATAMART_URL`` names."""
    monkeypatch.delenv(datamart.DATAMART_URL_ENV, raising=False)
    if kind == "sqlite":
        yield f"sqlite:///{layout(work).datamart}"
        return
    with postgres_database(request.getfixturevalue("_postgres_template")) as url:
        monkeypatch.setenv(datamart.DATAMART_URL_ENV, url)
        yield url


@pytest.fixture
def datamart_url(datamart_kind, tmp_path, monkeypatch, request) -> Iterator[str]:
    """The URL of a new, empty data mart of this test, of the pass's kind, found from ``tmp_path`` as a working
    directory."""
    with new_datamart(datamart_kind, tmp_path, monkeypatch, request) as url:
        yield url


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, datamart_kind, request) -> Iterator[Workspace]:
    """A trained, registered, deployed model in a temporary working directory of this test module.

    600 generated rows split 75/25; ``credit-risk-v1`` (logistic regression, deployed as ``credit-risk`` in
    ``dev``) and ``credit-risk-v2`` (gradient boosting); the data mart is the directory's own SQLite file (in a
    ``datamarts`` module's second pass, a PostgreSQL database of its own, which ``$CREDIT_DATAMART_URL`` names).
    ``credit-risk-v1`` has a passed and approved pre-prod evaluation, so that tests may deploy it to ``prod``.
    """
    folder = tmp_path_factory.mktemp("workspace")
    with pytest.MonkeyPatch.context() as monkeypatch, new_datamart(datamart_kind, folder, monkeypatch, request) as url:
        with threadpool_limits(limits=1):
            prepared = prepare_workspace(
                folder, model_types=("logistic_regression", "gradient_boosting"), datamart_url=url
            )
        _approve_for_production(prepared, "credit-risk-v1")
        yield prepared
        prepared.engine.dispose()


@pytest.fixture
def work(workspace, datamart_kind, tmp_path, monkeypatch, request) -> Iterator[Path]:
    """A working directory of this test only (its own data mart and job folders, ``$CREDIT_WORKDIR``), with the
    workspace's models: credit-risk-v1 (logistic regression) and credit-risk-v2 (gradient boosting, the latest).
    Its data mart is its own SQLite file (in a ``datamarts`` module's second pass, ``$CREDIT_DATAMART_URL`` names a
    PostgreSQL database of this test)."""
    folder = tmp_path / "work"
    shutil.copytree(layout(workspace.work).registry, layout(folder).registry)
    monkeypatch.setenv("CREDIT_WORKDIR", str(folder))
    with new_datamart(datamart_kind, folder, monkeypatch, request):
        yield folder
