"""Benchmark the pipeline: ``python -m utils.pipeline`` on the bundled data, in a fresh temporary working directory.

The run is a child process, as ``./workshop run`` starts it. Printed per step: its wall time as the pipeline
measured it (``run.json``), the time of its notebook's cells alone (papermill's per-cell durations in the executed
notebook: kernel start-up, shutdown and the recording of the notebook are the rest), and its share of the run. Then
the whole run against the floor of 60 s, and the steps 01 to 06 alone (the ``all`` stage without 07 and 08).
The load average before and after says how busy the machine was: compare runs made in the same conditions.

Usage::

    python benchmarks/bench_pipeline.py                  # the default stage, all
    python benchmarks/bench_pipeline.py --stage dev --keep
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
FLOOR_SECONDS = 60.0
#: The steps of the floor "01 to 06" (the issue's figure, from before 07 and 08 joined the default stage).
CORE_STEPS = ("01", "02", "03", "04", "05", "06")


def cell_seconds(notebook: Path) -> float:
    """The sum of papermill's per-cell durations in an executed notebook."""
    cells = nbformat.read(notebook, as_version=4).cells
    return sum(cell.metadata.get("papermill", {}).get("duration") or 0.0 for cell in cells)


def run(stage: str, work: Path) -> tuple[float, Path]:
    """Run the pipeline's ``stage`` into ``work``; its wall time and its run folder."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "utils.pipeline", "--stage", stage, "--work-dir", str(work)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode:
        raise SystemExit(f"the pipeline failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    (run_dir,) = (work / "runs").iterdir()
    return seconds, run_dir


def report(seconds: float, run_dir: Path) -> None:
    steps = json.loads((run_dir / "run.json").read_text())["steps"]
    print(f"{'step':<22} {'seconds':>8} {'cells':>7} {'share':>7}")
    for name, step in steps.items():
        cells = cell_seconds(run_dir / f"{name}.ipynb")
        print(f"{name:<22} {step['seconds']:>8.1f} {cells:>7.1f} {step['seconds'] / seconds:>7.0%}")
    steps_total = sum(step["seconds"] for step in steps.values())
    print(f"{'sum of the steps':<22} {steps_total:>8.1f}")
    _against_floor("whole run (wall)", seconds)
    core = [step["seconds"] for name, step in steps.items() if name[:2] in CORE_STEPS]
    if len(core) == len(CORE_STEPS):
        _against_floor("steps 01 to 06", sum(core))


def _against_floor(what: str, seconds: float) -> None:
    verdict = "within" if seconds <= FLOOR_SECONDS else "over"
    print(f"{what:<22} {seconds:>8.1f}   x{seconds / FLOOR_SECONDS:.2f} the floor of {FLOOR_SECONDS:.0f} s: {verdict}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage", default="all", choices=("all", "dev", "preprod"), help="default: all")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (its path is printed)")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    try:
        print(f"stage {args.stage}; load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        seconds, run_dir = run(args.stage, work)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        report(seconds, run_dir)
    finally:
        if args.keep:
            print("working directory kept:", work)
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
