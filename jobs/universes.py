"""spark-submit entry point for the universes job; see votelake.jobs.universes for inputs and outputs.

    spark-submit jobs/universes.py --conf conf/local.yaml [--set key=value ...]
"""

from votelake.jobs.universes import main

if __name__ == "__main__":
    main()
