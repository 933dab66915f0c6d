"""Path resolution: where the working directory is and how paths relate to it."""

from __future__ import annotations

from pathlib import Path

import pytest

from utils import config


@pytest.fixture
def fake_project(tmp_path, monkeypatch) -> Path:
    """Point the project root at a temporary folder so the default work dir is not created in the repo."""
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.setattr(config, "PROJECT_ROOT", root)
    return root


def test_explicit_path_wins_over_environment(tmp_path, monkeypatch, fake_project):
    monkeypatch.setenv(config.WORK_DIR_ENV, str(tmp_path / "from-env"))
    chosen = config.work_dir(tmp_path / "explicit")
    assert chosen == (tmp_path / "explicit").resolve()
    assert chosen.is_dir()
    assert not (tmp_path / "from-env").exists()
    assert not (fake_project / "work").exists()


def test_environment_wins_over_project_default(tmp_path, monkeypatch, fake_project):
    monkeypatch.setenv(config.WORK_DIR_ENV, str(tmp_path / "from-env" / "nested"))
    chosen = config.work_dir()
    assert chosen == (tmp_path / "from-env" / "nested").resolve()
    assert chosen.is_dir()
    assert not (fake_project / "work").exists()


@pytest.mark.parametrize("env_value", [None, ""])
def test_default_is_project_work_folder(monkeypatch, fake_project, env_value):
    if env_value is None:
        monkeypatch.delenv(config.WORK_DIR_ENV, raising=False)
    else:
        monkeypatch.setenv(config.WORK_DIR_ENV, env_value)
    chosen = config.work_dir()
    assert chosen == (fake_project / "work").resolve()
    assert chosen.is_dir()


def test_work_dir_is_absolute_and_expands_home(tmp_path, monkeypatch, fake_project):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    assert config.work_dir("~/w") == (tmp_path / "home" / "w").resolve()
    relative = config.work_dir("relative/w")
    assert relative.is_absolute()
    assert relative == (tmp_path / "relative" / "w").resolve()


def test_work_dir_accepts_existing_folder(tmp_path, fake_project):
    existing = tmp_path / "exists"
    existing.mkdir()
    (existing / "keep.txt").write_text("kept")
    assert config.work_dir(existing) == existing.resolve()
    assert (existing / "keep.txt").read_text() == "kept"


def test_in_work_dir_joins_relative_paths(tmp_path):
    work = config.work_dir(tmp_path / "w")
    assert config.in_work_dir(work, "data/train.csv") == work / "data" / "train.csv"
    assert config.in_work_dir(work, Path("model.skops")) == work / "model.skops"


def test_in_work_dir_passes_absolute_paths_through(tmp_path):
    work = config.work_dir(tmp_path / "w")
    elsewhere = tmp_path / "elsewhere" / "input.csv"
    assert config.in_work_dir(work, elsewhere) == elsewhere
    assert config.in_work_dir(work, str(elsewhere)) == elsewhere


def test_in_work_dir_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    work = config.work_dir(tmp_path / "w")
    assert config.in_work_dir(work, "~/input.csv") == tmp_path / "home" / "input.csv"


def test_relative_to_work_inside(tmp_path):
    work = config.work_dir(tmp_path / "w")
    assert config.relative_to_work(work, work / "registry" / "credit-risk" / "v1") == "registry/credit-risk/v1"
    assert config.relative_to_work(work, work / "splits" / ".." / "train.csv") == "train.csv"


def test_relative_to_work_outside_is_unchanged(tmp_path):
    work = config.work_dir(tmp_path / "w")
    outside = tmp_path / "other" / "file.csv"
    assert config.relative_to_work(work, outside) == str(outside)


def test_relative_and_in_work_dir_round_trip(tmp_path):
    work = config.work_dir(tmp_path / "w")
    path = work / "runs" / "r1" / "outputs.json"
    assert config.in_work_dir(work, config.relative_to_work(work, path)) == path
