"""spark-submit entry point for the build job; see votelake.jobs.build for inputs and outputs.

    spark-submit jobs/build.py --conf conf/local.yaml [--set key=value ...]
"""

from votelake.jobs.build import main

if __name__ == "__main__":
    main()
