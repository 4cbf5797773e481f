"""One entry point for every benchmark: ``python -m bench <name> [arguments]``.

Names: ``pipeline`` (the full pipeline per job, with floors and peers),
``summary`` (scaling curve and ratios over every size measured), ``peers``,
``model_quality``, ``score_scale``, ``allocation``, ``storage_bench``,
``ingest_bench``, ``resolve_quality``, ``precinct_calibration``.
``python -m bench <name> --help`` describes each.
"""

from __future__ import annotations

import importlib
import sys

NAMES = ("pipeline", "summary", "peers", "model_quality", "score_scale", "allocation", "storage_bench",
         "ingest_bench", "resolve_quality", "precinct_calibration")


def main(argv: list[str] | None = None) -> None:
    """Run the named benchmark's ``main`` with the remaining arguments."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in NAMES:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    importlib.import_module(f"bench.{args[0]}").main(args[1:])


if __name__ == "__main__":
    main()
