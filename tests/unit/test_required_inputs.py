"""Inputs a step needs: found where the working directory says, or an error naming the file and what makes it."""

from __future__ import annotations

import pytest

from utils import config


def test_an_input_present_in_the_working_directory_is_returned(tmp_path):
    layout = config.layout(tmp_path / "work")
    layout.train.parent.mkdir(parents=True)
    layout.train.write_text("CheckingStatus\n")
    assert layout.require("data/train.csv", "01_validate_data") == layout.train
    assert layout.require(layout.train) == layout.train, "absolute paths pass through"


def test_a_missing_input_names_the_file_the_folder_and_the_step_that_makes_it(tmp_path):
    layout = config.layout(tmp_path / "work")
    with pytest.raises(config.MissingInputError) as raised:
        layout.require("features/preprocessor.skops", "02_prepare_features")
    message = str(raised.value)
    assert message.startswith("features/preprocessor.skops: no such file or folder")
    assert f"in the working directory {layout.root};" in message
    assert "02_prepare_features makes it: run that first" in message
    assert isinstance(raised.value, FileNotFoundError), "callers catching FileNotFoundError still do"


def test_a_relative_path_outside_a_working_directory_says_where_it_was_looked_for(tmp_path, monkeypatch):
    """A notebook copied to another folder that reads ``../data/...`` learns which folder that was."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        config.MissingInputError, match=rf"^\.\./data/german_credit\.csv: .* current directory {tmp_path}$"
    ):
        config.require_input("../data/german_credit.csv")
    with pytest.raises(config.MissingInputError, match=r"^/nowhere/applicants\.csv: no such file or folder$"):
        config.require_input("/nowhere/applicants.csv")
