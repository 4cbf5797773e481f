"""spark-submit entry point for the train job; see votelake.jobs.train for inputs and outputs.

    spark-submit jobs/train.py --conf conf/local.yaml [--set key=value ...]
"""

from votelake.jobs.train import main

if __name__ == "__main__":
    main()
