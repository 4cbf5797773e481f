"""spark-submit entry point for the synth job; see votelake.jobs.synth for inputs and outputs.

    spark-submit jobs/synth.py --conf conf/local.yaml [--set key=value ...]
"""

from votelake.jobs.synth import main

if __name__ == "__main__":
    main()
