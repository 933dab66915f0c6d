"""Command line: ``python -m utils.datamart [--url URL] {upgrade,revision}``.

``upgrade`` brings the data mart to the newest schema revision (every process also does so when it first
connects); ``revision`` prints the data mart's revision and the newest one this code knows.
"""

from __future__ import annotations

import argparse
import sys

from utils.datamart import migrations
from utils.datamart.engine import DATAMART_URL_ENV, connect, datamart_url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.datamart", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("upgrade", "revision"))
    parser.add_argument("--url", default=None, help=f"SQLAlchemy URL (default: ${DATAMART_URL_ENV} or the work dir's)")
    args = parser.parse_args(argv)
    url = args.url or datamart_url()
    try:
        engine = connect(url) if args.command == "upgrade" else None
    except migrations.SchemaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if engine is None:
        from sqlalchemy import create_engine

        engine = create_engine(url)
    print(f"data mart revision {migrations.current(engine)}; newest known {migrations.head()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
