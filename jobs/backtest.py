"""spark-submit entry point for the backtest job; see votelake.jobs.backtest for inputs and outputs.

    spark-submit jobs/backtest.py --conf conf/oh_2021.yaml [--set key=value ...]
"""

from votelake.jobs.backtest import main

if __name__ == "__main__":
    main()
