"""spark-submit entry point for the ingest job; see votelake.jobs.ingest for inputs and outputs.

    spark-submit jobs/ingest.py --conf conf/local.yaml [--set key=value ...]
"""

from votelake.jobs.ingest import main

if __name__ == "__main__":
    main()
