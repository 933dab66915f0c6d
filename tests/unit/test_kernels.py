"""The pipeline's step kernels: started ahead with their notebook's imports, shut down cleanly."""

import nbformat
import pytest
from jupyter_core.utils import run_sync

from utils import config
from utils.kernels import KERNELS_AHEAD, KernelsAhead, StepKernel, warm_up_imports


def _notebook(tmp_path, *sources):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# A step")])
    notebook.cells += [nbformat.v4.new_code_cell(source) for source in sources]
    path = tmp_path / "step.ipynb"
    nbformat.write(notebook, path)
    return path


def test_the_warm_up_is_the_import_statements_of_the_first_code_cell(tmp_path):
    path = _notebook(
        tmp_path,
        "%matplotlib inline\nimport json\n\nfrom utils.data import (\n    LABEL,\n    load_credit_csv,\n)\n"
        "pd_option = 3  # not an import: left out",
        "import pandas as pd  # a later cell: left out",
    )

    assert warm_up_imports(path) == "import json\nfrom utils.data import LABEL, load_credit_csv"


def test_a_first_cell_that_does_not_parse_or_a_notebook_without_code_warms_up_nothing(tmp_path):
    assert warm_up_imports(_notebook(tmp_path, "import json\nif True print(1)")) == ""
    assert warm_up_imports(_notebook(tmp_path)) == ""


def test_every_pipeline_notebook_warms_up_what_its_first_cell_imports():
    for notebook in sorted(config.NOTEBOOKS_DIR.glob("0*.ipynb")):
        assert "from utils.pipeline import record_outputs" in warm_up_imports(notebook), notebook.name


@pytest.mark.slow
def test_a_step_kernel_starts_with_the_imports_done_outside_the_execution_count(tmp_path):
    kernel = StepKernel(_notebook(tmp_path, "import colorsys"), tmp_path)
    client = kernel.manager.client()
    try:
        client.start_channels()
        run_sync(client.wait_for_ready)(timeout=120)
        printed = []

        def keep_stream(message):
            if message["msg_type"] == "stream":
                printed.append(message["content"]["text"])

        reply = run_sync(client.execute_interactive)(
            "import os, sys; print('colorsys' in sys.modules, os.getcwd())", timeout=60, output_hook=keep_stream
        )
        assert "".join(printed).split() == ["True", str(tmp_path)], "imported ahead, in the step's folder"
        assert reply["content"]["execution_count"] == 1, "the warm-up did not enter the execution count"
        assert run_sync(kernel.manager.is_alive)()
    finally:
        client.stop_channels()
        kernel.close()
    assert not run_sync(kernel.manager.is_alive)()


@pytest.mark.slow
def test_kernels_ahead_start_the_next_kernels_and_shut_down_the_earlier_ones(tmp_path):
    notebooks = [_notebook(tmp_path, "import json")] * (KERNELS_AHEAD + 2)
    with KernelsAhead(notebooks, tmp_path) as kernels:
        first = kernels.take(0)
        assert sorted(kernels._started) == list(range(KERNELS_AHEAD + 1)), "the next ones start, no more"
        second = kernels._started[1]
        first.request_shutdown()
        assert kernels.take(1) is second
        assert 0 in kernels._started, "the finished step's kernel shuts down while the next step runs"
        second.request_shutdown()
        third = kernels.take(2)
        assert 0 not in kernels._started and not run_sync(first.manager.is_alive)(), "then it is waited for"
        started = list(kernels._started.values())
    assert not any(run_sync(k.manager.is_alive)() for k in started), "every kernel ends with the context"
    assert third in started


def test_the_deep_imports_name_notebooks_of_the_pipeline_and_are_python():
    from utils.pipeline import DEEP_IMPORTS
    from utils.stages import STAGES

    notebooks = {step.notebook for steps in STAGES.values() for step in steps}
    assert set(DEEP_IMPORTS) <= notebooks
    for code in DEEP_IMPORTS.values():
        compile(code, "<warm-up>", "exec")
