"""spark-submit entry point for the score job; see votelake.jobs.score for inputs and outputs.

    spark-submit jobs/score.py --conf conf/local.yaml [--set key=value ...]
"""

from votelake.jobs.score import main

if __name__ == "__main__":
    main()
