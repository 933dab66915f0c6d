import pytest

from utils.environment import REQUIRED_PYTHON, pinned_versions, python_ok, version_mismatches


def test_pinned_versions_reads_name_version_lines(tmp_path):
    lock = tmp_path / "requirements.lock"
    lock.write_text("# a comment\npandas==2.3.3\nnumpy==1.26.4  # trailing comment\n\n-e .\n")

    assert pinned_versions(lock) == {"pandas": "2.3.3", "numpy": "1.26.4"}


def test_the_project_lock_pins_the_core_libraries():
    pins = pinned_versions()

    assert {"pandas", "scikit-learn", "papermill", "nbval", "pandera", "skops"} <= set(pins)


def test_version_mismatches_lists_wrong_and_missing_packages():
    import pandas

    mismatches = version_mismatches(
        {"pandas": pandas.__version__, "pytest": "0.0.1", "no-such-package-anywhere": "1.0"}
    )

    assert mismatches.to_dict("records") == [
        {"package": "no-such-package-anywhere", "pinned": "1.0", "installed": "missing"},
        {"package": "pytest", "pinned": "0.0.1", "installed": pytest.__version__},
    ]


def test_the_installed_environment_matches_the_lock():
    assert version_mismatches(pinned_versions()).empty


def test_python_ok_accepts_only_the_pinned_minor_version():
    assert python_ok(REQUIRED_PYTHON + (7,))
    assert not python_ok((3, 12, 0))
    assert not python_ok((3, 10))
