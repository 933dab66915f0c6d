"""Benchmark the start of the command lines: how long ``python -m utils.X --help`` takes, beside a bare interpreter.

Each command runs in a fresh child process (the interpreter of this one, with this checkout first on the path),
``--repeat`` times; the best time is kept, the least disturbed by whatever else the machine runs. The target is
under 1 s for ``--help`` and argument errors, which parse before anything heavy is imported (docs/architecture.md,
"Decisions").

Usage::

    python benchmarks/bench_startup.py              # every command line, best of 5
    python benchmarks/bench_startup.py --repeat 10 batch serving
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMAND_LINES = ("batch", "checks", "data", "datamart", "lifecycle", "monitoring", "pipeline", "serving")
TARGET_SECONDS = 1.0


def best_time(arguments: list[str], repeat: int) -> float:
    """The shortest wall time, in seconds, of ``repeat`` runs of the interpreter with ``arguments``."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, *arguments], env=env, cwd=ROOT, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs of each command; the best counts (default 5)")
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"of {', '.join(COMMAND_LINES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(COMMAND_LINES))
    if unknown:
        parser.error(f"no command line utils.{unknown[0]}; choose from {', '.join(COMMAND_LINES)}")
    bare = best_time(["-c", "pass"], args.repeat)
    print(f"best of {args.repeat} runs; target: --help under {TARGET_SECONDS:.0f} s")
    print(f"{'command':<42} {'seconds':>8} {'x bare':>7}")
    print(f"{'python -c pass (bare interpreter)':<42} {bare:>8.3f} {1:>7.1f}")
    slow = []
    for name in args.names or COMMAND_LINES:
        seconds = best_time(["-m", f"utils.{name}", "--help"], args.repeat)
        print(f"{f'python -m utils.{name} --help':<42} {seconds:>8.3f} {seconds / bare:>7.1f}")
        if seconds >= TARGET_SECONDS:
            slow.append(name)
    print("all under the target" if not slow else f"over the target: {', '.join(slow)}")


if __name__ == "__main__":
    main()
