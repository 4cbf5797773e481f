"""spark-submit entry point for the whole pipeline (ingest, build, train, score, segment, universes,
allocate, metrics).

    spark-submit jobs/pipeline.py --conf conf/local.yaml [--set key=value ...]
"""

import sys

from votelake.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["pipeline", *sys.argv[1:]]))
