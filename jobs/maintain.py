"""spark-submit entry point for the maintain job; see votelake.jobs.maintain for what it does.

    spark-submit jobs/maintain.py --conf conf/local.yaml [--set key=value ...]
"""

from votelake.jobs.maintain import main

if __name__ == "__main__":
    main()
