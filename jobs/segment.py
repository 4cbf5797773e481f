"""spark-submit entry point for the segment job; see votelake.jobs.segment for inputs and outputs.

    spark-submit jobs/segment.py --conf conf/local.yaml [--set key=value ...]
"""

from votelake.jobs.segment import main

if __name__ == "__main__":
    main()
