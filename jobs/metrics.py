"""spark-submit entry point for the metrics job; see votelake.jobs.metrics for inputs and outputs.

    spark-submit jobs/metrics.py --conf conf/local.yaml [--set key=value ...]
"""

from votelake.jobs.metrics import main

if __name__ == "__main__":
    main()
