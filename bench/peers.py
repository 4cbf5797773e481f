"""The turnout model pipeline as a campaign analyst would write it on one machine: pandas or DuckDB, then scikit-learn.

Same inputs as votelake's pipeline (the NC-layout voter file and vote history
under a landing folder), same question: who votes in the latest general
election of the history, from what was known before it.

1. Read the newest voter-file snapshot and every vote-history file.
2. Per voter, from the ballots cast before the target general: generals,
   primaries and municipal elections voted, the share of generals voted while
   registered, years since the last vote, the share of absentee and early
   ballots; from the voter file: age, party, gender, county and years
   registered (race and ethnicity are left out, as in votelake's default).
3. Label: voted in the target general. Voters registered after it are left out.
4. A 20% hold-out by a hash of the voter id; logistic regression (one-hot
   categories, scaled numbers) and histogram gradient boosting; AUC on the hold-out.
5. Score every voter with the better model and write the scores as Parquet.

``--engine pandas`` does steps 1-3 in pandas, ``--engine duckdb`` in DuckDB
SQL; both hand the feature table to scikit-learn. The process prints one
JSON line: seconds per step, peak resident memory (``ru_maxrss``: pandas or
DuckDB, the models and Python together), rows, AUCs.

Run: ``python -m bench.peers --engine pandas --landing /data/bench1m/synth/landing --out /tmp/peer``.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

VOTER_COLUMNS = ["ncid", "county_id", "status_cd", "party_cd", "gender_code", "birth_year", "registr_dt"]
HISTORY_COLUMNS = ["ncid", "election_lbl", "election_desc", "voting_method"]
CATEGORICAL = ["party_cd", "gender_code", "county_id"]
NUMERIC = ["age", "years_registered", "generals_voted", "primaries_voted", "municipals_voted", "general_rate",
           "years_since_last_vote", "absentee_share", "early_share"]
SEED = 7


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".csv", ".txt", ".tsv"))


def newest_snapshot(landing: Path) -> list[Path]:
    """The files of the newest voter-file snapshot (folders sort by date)."""
    snapshots = sorted(p for p in (landing / "ncvoter").iterdir() if p.is_dir())
    return _files(snapshots[-1]) if snapshots else _files(landing / "ncvoter")


# -- pandas ------------------------------------------------------------------------


def features_pandas(landing: Path) -> tuple[pd.DataFrame, str]:
    """Steps 1-3 in pandas: one row per voter with the features and the label."""
    read = dict(sep="\t", dtype=str, keep_default_na=False, encoding="utf-8")
    voters = pd.concat([pd.read_csv(f, usecols=VOTER_COLUMNS, **read) for f in newest_snapshot(landing)])
    voters = voters.drop_duplicates("ncid")
    history = pd.concat([pd.read_csv(f, usecols=HISTORY_COLUMNS, **read) for f in _files(landing / "ncvhis")])
    history["date"] = pd.to_datetime(history["election_lbl"], format="%m/%d/%Y", errors="coerce")
    desc = history["election_desc"].str.upper()
    history["kind"] = np.select([desc.str.contains("GENERAL"), desc.str.contains("PRIMARY"),
                                 desc.str.contains("MUNICIPAL")], ["GENERAL", "PRIMARY", "MUNICIPAL"], "OTHER")
    target = history.loc[history["kind"] == "GENERAL", "date"].max()
    voted = set(history.loc[history["date"] == target, "ncid"])
    before = history[history["date"] < target]
    method = before["voting_method"].str.upper()
    before = before.assign(general=before["kind"] == "GENERAL", primary=before["kind"] == "PRIMARY",
                           municipal=before["kind"] == "MUNICIPAL", absentee=method.str.contains("ABSENTEE|MAIL"),
                           early=method.str.contains("EARLY|ONE-STOP"))
    per_voter = before.groupby("ncid").agg(
        generals_voted=("general", "sum"), primaries_voted=("primary", "sum"), municipals_voted=("municipal", "sum"),
        absentee=("absentee", "sum"), early=("early", "sum"), ballots=("date", "size"), last_vote=("date", "max"))
    generals = np.sort(before.loc[before["general"], "date"].unique())

    voters["registered"] = pd.to_datetime(voters["registr_dt"], errors="coerce", format="mixed")
    voters = voters[voters["registered"].isna() | (voters["registered"] < target)]
    out = voters.join(per_voter, on="ncid", how="left")
    counts = out[["generals_voted", "primaries_voted", "municipals_voted", "absentee", "early", "ballots"]]
    out[counts.columns] = counts.fillna(0)
    held = len(generals) - np.searchsorted(generals, out["registered"].fillna(pd.Timestamp.min).to_numpy())
    out["general_rate"] = np.where(held > 0, out["generals_voted"] / np.maximum(held, 1), 0.0)
    out["years_since_last_vote"] = (target - out["last_vote"]).dt.days / 365.25
    out["absentee_share"] = np.where(out["ballots"] > 0, out["absentee"] / out["ballots"].clip(lower=1), 0.0)
    out["early_share"] = np.where(out["ballots"] > 0, out["early"] / out["ballots"].clip(lower=1), 0.0)
    out["age"] = target.year - pd.to_numeric(out["birth_year"], errors="coerce")
    out["years_registered"] = (target - out["registered"]).dt.days / 365.25
    out["label"] = out["ncid"].isin(voted).astype(int)
    return out[["ncid", *CATEGORICAL, *NUMERIC, "label"]].reset_index(drop=True), str(target.date())


# -- DuckDB ------------------------------------------------------------------------

DUCKDB_FEATURES = """
WITH voters AS (
    SELECT DISTINCT ON (ncid) ncid, county_id, party_cd, gender_code, TRY_CAST(birth_year AS INT) AS birth_year,
           COALESCE(TRY_STRPTIME(registr_dt, '%m/%d/%Y'), TRY_STRPTIME(registr_dt, '%Y-%m-%d')) AS registered
    FROM read_csv($voters, delim = '\t', header = true, all_varchar = true)
),
history AS (
    SELECT ncid, TRY_STRPTIME(election_lbl, '%m/%d/%Y') AS date, upper(voting_method) AS method,
           CASE WHEN upper(election_desc) LIKE '%GENERAL%' THEN 'GENERAL'
                WHEN upper(election_desc) LIKE '%PRIMARY%' THEN 'PRIMARY'
                WHEN upper(election_desc) LIKE '%MUNICIPAL%' THEN 'MUNICIPAL' ELSE 'OTHER' END AS kind
    FROM read_csv($history, delim = '\t', header = true, all_varchar = true)
),
target AS (SELECT max(date) AS date FROM history WHERE kind = 'GENERAL'),
before AS (SELECT h.* FROM history h, target t WHERE h.date < t.date),
generals AS (SELECT DISTINCT date FROM before WHERE kind = 'GENERAL'),
per_voter AS (
    SELECT ncid, count(*) FILTER (kind = 'GENERAL') AS generals_voted,
           count(*) FILTER (kind = 'PRIMARY') AS primaries_voted,
           count(*) FILTER (kind = 'MUNICIPAL') AS municipals_voted,
           count(*) FILTER (regexp_matches(method, 'ABSENTEE|MAIL')) AS absentee,
           count(*) FILTER (regexp_matches(method, 'EARLY|ONE-STOP')) AS early,
           count(*) AS ballots, max(date) AS last_vote
    FROM before GROUP BY ncid
),
voted AS (SELECT DISTINCT h.ncid FROM history h, target t WHERE h.date = t.date)
SELECT v.ncid, t.date AS target_date, v.party_cd, v.gender_code, v.county_id,
       year(t.date) - v.birth_year AS age,
       date_diff('day', v.registered, t.date) / 365.25 AS years_registered,
       coalesce(p.generals_voted, 0) AS generals_voted, coalesce(p.primaries_voted, 0) AS primaries_voted,
       coalesce(p.municipals_voted, 0) AS municipals_voted,
       CASE WHEN held > 0 THEN coalesce(p.generals_voted, 0) / held ELSE 0 END AS general_rate,
       date_diff('day', p.last_vote, t.date) / 365.25 AS years_since_last_vote,
       CASE WHEN p.ballots > 0 THEN p.absentee / p.ballots ELSE 0 END AS absentee_share,
       CASE WHEN p.ballots > 0 THEN p.early / p.ballots ELSE 0 END AS early_share,
       (w.ncid IS NOT NULL)::INT AS label
FROM voters v CROSS JOIN target t
LEFT JOIN per_voter p USING (ncid)
LEFT JOIN voted w USING (ncid)
CROSS JOIN LATERAL (SELECT count(*) AS held FROM generals g
                    WHERE v.registered IS NULL OR g.date >= v.registered) AS h
WHERE v.registered IS NULL OR v.registered < t.date
"""


def features_duckdb(landing: Path) -> tuple[pd.DataFrame, str]:
    """Steps 1-3 in DuckDB SQL: one row per voter with the features and the label."""
    import duckdb

    con = duckdb.connect()
    params = {"voters": [str(p) for p in newest_snapshot(landing)],
              "history": [str(p) for p in _files(landing / "ncvhis")]}
    frame = con.execute(DUCKDB_FEATURES, params).df()
    target = frame.pop("target_date").iloc[0]  # the one query reads the history once
    return frame, str(target.date())


# -- scikit-learn ------------------------------------------------------------------


def held_out(ids: pd.Series) -> np.ndarray:
    """A stable 20% hold-out by a hash of the voter id."""
    return np.fromiter((zlib.crc32(i.encode()) % 5 == 0 for i in ids), dtype=bool, count=len(ids))


def fit_and_score(frame: pd.DataFrame, out: Path) -> dict:
    """Fit both learners, measure their hold-out AUC, score every voter with the better one."""
    x = frame[CATEGORICAL + NUMERIC].copy()
    x[CATEGORICAL] = x[CATEGORICAL].astype(str)
    y = frame["label"].to_numpy()
    test = held_out(frame["ncid"])
    encode = ColumnTransformer([
        ("categories", OneHotEncoder(handle_unknown="ignore", min_frequency=20), CATEGORICAL),
        ("numbers", make_pipeline(StandardScaler()), NUMERIC)])
    learners = {
        "lr": make_pipeline(encode, LogisticRegression(max_iter=200)),
        "gbt": HistGradientBoostingClassifier(max_iter=100, categorical_features="from_dtype", random_state=SEED),
    }
    x_lr = x.fillna({c: 0.0 for c in NUMERIC})
    x_gbt = x.astype({c: "category" for c in CATEGORICAL})
    inputs = {"lr": x_lr, "gbt": x_gbt}
    result, models = {}, {}
    for name, model in learners.items():
        started = time.perf_counter()
        model.fit(inputs[name][~test], y[~test])
        p = model.predict_proba(inputs[name][test])[:, 1]
        result[name] = {"auc": round(float(roc_auc_score(y[test], p)), 4),
                        "seconds": round(time.perf_counter() - started, 1)}
        models[name] = model
    best = max(result, key=lambda n: result[n]["auc"])
    started = time.perf_counter()
    scores = pd.DataFrame({"ncid": frame["ncid"], "turnout_prob": models[best].predict_proba(inputs[best])[:, 1]})
    out.mkdir(parents=True, exist_ok=True)
    scores.to_parquet(out / "turnout_scores.parquet", index=False)
    result["score_seconds"] = round(time.perf_counter() - started, 1)
    result["best"] = best
    result["held_out"] = int(test.sum())
    return result


def main(argv: list[str] | None = None) -> dict:
    """Run one engine's pipeline and print its figures as one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("pandas", "duckdb"), required=True)
    parser.add_argument("--landing", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    frame, target = (features_pandas if args.engine == "pandas" else features_duckdb)(args.landing)
    feature_seconds = time.perf_counter() - started
    models = fit_and_score(frame, args.out)
    result = {
        "engine": args.engine, "target_general": target, "voters": len(frame),
        "turnout_rate": round(float(frame["label"].mean()), 4),
        "feature_seconds": round(feature_seconds, 1), "models": models,
        "total_seconds": round(time.perf_counter() - started, 1),
        # ru_maxrss is in KiB on Linux.
        "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
