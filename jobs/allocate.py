"""spark-submit entry point for the allocate job; see votelake.jobs.allocate for inputs and outputs.

    spark-submit jobs/allocate.py --conf conf/local.yaml [--set key=value ...]
"""

from votelake.jobs.allocate import main

if __name__ == "__main__":
    main()
