"""Command line: ``python -m utils.datamart {upgrade,revision} [--url URL]``.

``upgrade`` brings the data mart to the newest schema revision (every process also does so when it first
connects); ``revision`` prints the data mart's revision and the newest one this code knows, changing nothing.
SQLAlchemy and Alembic are imported once the arguments are parsed.
"""

from __future__ import annotations

import argparse
import sys

from utils.config import DATAMART_URL_ENV


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m utils.datamart", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("upgrade", "revision"))
    parser.add_argument("--url", default=None, help=f"SQLAlchemy URL (default: ${DATAMART_URL_ENV} or the work dir's)")
    args = parser.parse_args(argv)
    import sqlalchemy as sa

    from utils.datamart import migrations
    from utils.datamart.engine import datamart_url

    engine = sa.create_engine(args.url or datamart_url())
    try:
        if args.command == "upgrade":
            migrations.upgrade(engine)
    except migrations.SchemaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"data mart revision {migrations.current(engine)}; newest known {migrations.head()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
