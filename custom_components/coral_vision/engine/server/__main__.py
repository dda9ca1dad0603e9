"""`python -m engine.server [options]`: run Coral Vision's server (see options.py for the flags)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Sequence

from .app import AppSettings
from .options import OptionsError, parse_options
from .run import serve


def main(
    argv: Sequence[str] | None = None,
    settings: AppSettings | None = None,
    *,
    prog: str = "python -m engine.server",
) -> int:
    """Run the server until SIGTERM or SIGINT; return the exit status (2: bad options)."""
    try:
        options = parse_options(sys.argv[1:] if argv is None else argv, prog=prog)
    except OptionsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=options.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        asyncio.run(serve(options, settings))
    except OSError as err:  # the port is taken, the address is not ours
        print(f"error: cannot serve on {options.host}:{options.port}: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
