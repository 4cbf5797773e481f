"""spark-submit entry point for the forget job; see votelake.jobs.forget for what it does.

    spark-submit jobs/forget.py --state-voter-id ID --reason "..." [--purge-now] [--conf FILE] [--set key=value ...]
"""

from votelake.jobs.forget import main

if __name__ == "__main__":
    main()
