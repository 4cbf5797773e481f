"""Check, from a fresh spark-submit, that executors run Python from the shipped environment.

    spark-submit --master spark://127.0.0.1:PORT \\
      --archives .cluster/votelake-env.tar.gz#environment \\
      --conf spark.pyspark.python=./environment/bin/python \\
      --conf spark.pyspark.driver.python=.venv/bin/python \\
      $(python -m votelake.jars submit-args) \\
      infra/cluster_check.py --work-root /tmp/votelake-cluster.XXXX --repo "$PWD" \\
      [--conf CONF --expect-executors 2]

A Python UDF reports, from every task, the interpreter (``sys.executable``),
where ``votelake`` was imported from and the executor's working folder. The
check fails unless every one of them lies under the workers' root folder and
none under the repository, and unless tasks ran on as many distinct executors
as expected. With ``--conf``, it also reads ``gold.voter_scores`` through the
configured catalog and compares its count with the one the ``deltalake``
package (no Spark) reads from the table's folder.

Exit code 0 when every check holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def where_am_i(_: int) -> str:
    """Describe the Python process running this task (runs on an executor).

    Args:
        _: the row's id (unused: only the process matters).

    Returns:
        JSON with the interpreter, votelake's and pyspark's files, and the working folder.
    """
    import json as _json
    import os as _os
    import sys as _sys
    import time as _time

    import pyspark as _pyspark

    import votelake as _votelake

    # Long enough that the tasks spread over every executor instead of one taking them all.
    _time.sleep(0.5)
    return _json.dumps({
        "executable": _os.path.abspath(_sys.executable),
        "prefix": _sys.prefix,
        "votelake": _os.path.abspath(_votelake.__file__),
        "pyspark": _os.path.abspath(_pyspark.__file__),
        "cwd": _os.getcwd(),
    })


def under(path: str, root: Path) -> bool:
    """True when ``path`` lies inside ``root`` (symlinked folders resolved, the file itself not).

    Args:
        path: a file path; its last component is kept as is, because a venv's
            ``bin/python`` is a symlink to the base interpreter.
        root: the folder.
    """
    parent = Path(os.path.realpath(os.path.dirname(path)))
    return parent == root or root in parent.parents


def main(argv: list[str] | None = None) -> int:
    """Run the checks; print one line per fact and a verdict.

    Args:
        argv: ``--work-root DIR --repo DIR [--conf FILE] [--expect-executors N]``.

    Returns:
        0 when every check holds, else 1.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-root", type=Path, required=True, help="the workers' root folder")
    parser.add_argument("--repo", type=Path, required=True, help="the driver's checkout")
    parser.add_argument("--conf", default=None, help="the pipeline's config: also check gold.voter_scores")
    parser.add_argument("--expect-executors", type=int, default=2)
    args = parser.parse_args(argv)
    work_root, repo = args.work_root.resolve(), args.repo.resolve()

    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    if args.conf:
        from votelake.config import load_settings
        from votelake.session import build_spark

        settings = load_settings(args.conf, [])
        spark = build_spark(settings.spark, settings.storage.metastore)
    else:
        spark = SparkSession.builder.appName("votelake-cluster-check").getOrCreate()

    where = F.udf(where_am_i, "string")
    rows = spark.range(0, 32, numPartitions=16).select(where("id").alias("w")).distinct().collect()
    seen = [json.loads(r.w) for r in rows]
    failures = []
    for fact in seen:
        print(f"executor python: {fact['executable']}  votelake: {fact['votelake']}  pyspark: {fact['pyspark']}")
        for key in ("executable", "votelake"):
            if not under(fact[key], work_root):
                failures.append(f"{key} {fact[key]} is not under the workers' root {work_root}")
            if under(fact[key], repo):
                failures.append(f"{key} {fact[key]} is under the repository {repo}")
    executors = {fact["cwd"] for fact in seen}
    print(f"tasks ran in {len(executors)} executor folder(s): {sorted(executors)}")
    if len(executors) < args.expect_executors:
        failures.append(f"tasks ran on {len(executors)} executor(s), expected {args.expect_executors}")

    if args.conf:
        from deltalake import DeltaTable

        spark_rows = spark.table("gold.voter_scores").count()
        location = spark.sql("DESCRIBE DETAIL gold.voter_scores").first()["location"]
        # deltalake reads the folder without Spark: an independent count.
        delta_rows = DeltaTable(location.removeprefix("file:")).to_pyarrow_dataset().count_rows()
        print(f"gold.voter_scores: {spark_rows} rows through the catalog, {delta_rows} with deltalake at {location}")
        if spark_rows != delta_rows or spark_rows == 0:
            failures.append(f"gold.voter_scores counts differ or are zero: {spark_rows} vs {delta_rows}")

    spark.stop()
    for failure in failures:
        print(f"FAIL: {failure}")
    print("cluster check: " + ("FAILED" if failures else "OK"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
