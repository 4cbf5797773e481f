"""Typed, validated configuration.

A run's configuration comes from one YAML file (``conf/local.yaml``, shipped
inside the package, is the embedded default), then environment variables, then
``--set key=value`` overrides, in that order. Everything is validated before
Spark starts: an unknown key or a bad value raises :class:`ConfigError` naming
the key.

A file may build on another with ``extends: local`` (a packaged config's name)
or ``extends: ../base.yaml`` (a path relative to the file): the base is read
first and the file only overrides what it sets; sections merge key by key,
while lists and values replace. Without ``extends`` a file builds on the
schema's defaults.

Overrides are text: ``--set publish.force_reason=rerun: 2026-11 file`` sets
that string. Only keys the schema types as lists, mappings or sections, and
``null`` for a key that may be unset, are read as YAML.

Environment overrides use the prefix ``VOTELAKE__`` and ``__`` between levels,
e.g. ``VOTELAKE__SYNTH__VOTERS=5000`` is the same as ``--set synth.voters=5000``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, Sequence

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from votelake.locations import Location, LocationSetting, is_uri, join, local_path
from votelake.resolve.settings import ResolveSettings
from votelake.rules import parse as parse_rule

ENV_PREFIX = "VOTELAKE__"
# The default configuration ships inside the package (package data), so an
# installed wheel finds it wherever it runs; files on disk, since paths to them
# are handed to Spark and Great Expectations.
CONF_DIR = Path(__file__).resolve().parent / "conf"
DEFAULT_CONF = CONF_DIR / "local.yaml"


# Folders of the operating system: no job output may go there, whatever the config says.
SYSTEM_FOLDERS = ("/etc", "/bin", "/sbin", "/usr", "/lib", "/lib64", "/boot", "/dev", "/proc", "/sys", "/run",
                  "/var/run", "/var/spool", "/var/log", "/var/mail")


class ConfigError(ValueError):
    """A configuration file, override or value is invalid."""


class _Strict(BaseModel):
    # Unknown keys fail fast; a typo must never be silently ignored.
    model_config = ConfigDict(extra="forbid", frozen=True)


class SparkSettings(_Strict):
    """How the SparkSession is built."""

    master: str = "local[*]"
    # A Spark Connect endpoint (sc://host:port); when set, the session is a Connect
    # client and master, memory and conf belong to the server.
    remote: str | None = Field(None, pattern=r"^sc://")
    app_name: str = "votelake"
    shuffle_partitions: int = Field(8, ge=1)
    # Local mode: the driver is also the executor (a 200k state needs ~6g; the machine has 24).
    driver_memory: str = Field("8g", pattern=r"^\d+[kKmMgGtT]?$")
    conf: dict[str, str] = Field(default_factory=dict)


class StorageSettings(_Strict):
    """Where tables live and the catalog that names them (delta-spark writes every table)."""

    # A local folder, or a URI every node reaches on a cluster (s3a://, abfss://, hdfs://).
    lakehouse: LocationSetting = Path("lakehouse")
    # The embedded Hive metastore (Derby) that registers every table as bronze.*,
    # silver.*, gold.*. One process at a time can open it. null: the cluster's own
    # metastore or catalog, named in spark.conf (hive.metastore.uris, Glue, Unity Catalog).
    metastore: Path | None = Path("metastore")
    catalog: Path = CONF_DIR / "tables.yaml"
    # Data contracts of the published tables (they declare those tables).
    contracts: Path = CONF_DIR / "contracts"
    # The permissions mask of everything a job writes (tables, MLflow store,
    # reports, exports): 077 is owner-only, since bronze and silver hold personal data.
    umask: str = Field("077", pattern=r"^0?[0-7]{3}$")
    # Where jobs may write (lakehouse, metastore, exports, reports, the MLflow
    # store, synthetic output): under one of these folders (relative: against
    # the directory the job starts in) or the system's temporary folder. A
    # config or --set pointing elsewhere fails naming the key, unless
    # allow_outside says it is meant. System folders (/etc, /usr, ...) never.
    roots: tuple[Path, ...] = (Path("."),)
    allow_outside: bool = False


TRACKING_SCHEMES = ("sqlite", "file", "http", "https", "postgresql", "mysql", "mssql", "databricks")
LOOPBACK = ("localhost", "127.0.0.1", "::1")


class MlflowSettings(_Strict):
    """MLflow tracking store and registry."""

    # Runs, models and reports leave this machine only when this is set: a
    # tracking server or database on another host must be named on purpose.
    allow_remote: bool = False
    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_root: Path = Path("mlartifacts")
    experiment_prefix: str = "votelake"

    @field_validator("tracking_uri")
    @classmethod
    def _tracking_uri(cls, uri: str, info) -> str:
        scheme, sep, rest = uri.partition("://")
        if scheme not in TRACKING_SCHEMES or (scheme in ("sqlite", "file") and not rest):
            raise ValueError(f"scheme {scheme!r} is not one of {', '.join(TRACKING_SCHEMES)} "
                             "(e.g. sqlite:///mlflow.db, http://127.0.0.1:5000)")
        host = rest.split("/", 1)[0].rsplit("@", 1)[-1]
        host = host[1:].split("]", 1)[0] if host.startswith("[") else host.split(":", 1)[0]
        local = scheme in ("sqlite", "file") or (scheme != "databricks" and host in LOOPBACK)
        if not local and not info.data.get("allow_remote"):
            raise ValueError(f"{scheme}{sep}{host} is not this machine; set mlflow.allow_remote: true to send "
                             "runs, models and reports there")
        return uri


class SynthSettings(_Strict):
    """The synthetic state generator."""

    voters: int = Field(200_000, ge=100, le=100_000_000)
    seed: int = 42
    out: Path = Path("data/synth")
    partitions: int = Field(8, ge=1)
    # The share of people the support-ID program attempts (1-3 contacts each).
    id_share: float = Field(0.04, ge=0.0, le=1.0)
    # The persuasion experiment: the share of the campaign audience randomised
    # 50/50 into treatment and control, and the share of its members the
    # follow-up phone survey attempts. At 1M voters the defaults give the
    # follow-up IDs an uplift model's Qini (with a bootstrap CI) needs.
    experiment_share: float = Field(0.10, ge=0.0, le=1.0)
    followup_share: float = Field(1.0, ge=0.0, le=1.0)


class TargetElection(_Strict):
    """The election the turnout scores predict."""

    date: dt.date
    # presidential, midterm or off_year (state and municipal offices only);
    # default: from the year (presidential every fourth, midterm in the other even years).
    type: Literal["presidential", "midterm", "off_year"] | None = None
    # The share of the scored (active) voters expected to vote, from a turnout
    # projection: the level is not in any voter's history. Set, every published
    # turnout probability moves by one logit shift so their mean is this (ranks
    # unchanged; turnout_prob_model keeps the model's). Default: the model's level.
    expected_turnout: float | None = Field(None, gt=0.0, lt=1.0)


class ModelSettings(_Strict):
    """Model training settings shared by the turnout, support and persuasion models."""

    # The election turnout is predicted for; default: the next November general
    # after the data's scoring date, its level from its year.
    target_election: TargetElection | None = None
    # Past generals the turnout model learns from, per level (presidential,
    # midterm, off-year), newest first: each with the features as of its date.
    turnout_generals_per_level: int = Field(2, ge=1, le=6)
    # Generals the backtest job predicts out of time (from what was known before
    # each); empty: the latest presidential and the latest midterm general.
    backtest_elections: tuple[dt.date, ...] = ()

    # Voters held out for evaluation and the champion gate (by a hash of person_id).
    test_fraction: float = Field(0.2, gt=0.0, lt=0.9)
    # Share of the remaining training voters kept aside to fit the probability calibration.
    calibration_fraction: float = Field(0.2, gt=0.0, lt=0.9)
    # Isotonic or Platt calibration; "auto" is isotonic from isotonic_min_rows
    # calibration rows up, Platt below (isotonic overfits a few thousand rows).
    probability_calibration: Literal["auto", "isotonic", "platt"] = "auto"
    isotonic_min_rows: int = Field(10_000, ge=1)
    seed: int = 7
    # The model types the train job fits (the others keep their champions).
    kinds: tuple[Literal["turnout", "support", "persuasion"], ...] = ("turnout", "support", "persuasion")
    # Candidate learners per model type; each is tuned, logged and put to the champion gate.
    # "xgb" is gradient boosting by xgboost.spark (one Spark job per fit, a
    # fraction of "gbt"'s time); "gbt" is MLlib's (Spark jobs per tree level,
    # and it also runs over Spark Connect). gbt stays the default until xgb
    # meets the presidential-year calibration target: its scores for a general
    # two years ahead run low even when it learns at that horizon
    # (bench/results/turnout_targets_200k.md).
    learners: tuple[Literal["lr", "gbt", "xgb"], ...] = ("lr", "gbt")
    # Hyperparameter search: train-validation split, k-fold cross-validation or none.
    tuning: Literal["tvs", "cv", "none"] = "tvs"
    train_ratio: float = Field(0.8, gt=0.1, lt=1.0)
    # The search fits each candidate on a seeded sample of at most this many
    # rows; the chosen parameters are then fitted on every row.
    tuning_max_rows: int = Field(500_000, ge=1000)
    folds: int = Field(3, ge=2)
    # Fits run at once (a search's candidates, the uplift's cross-fitting folds);
    # None: as many as there are, up to the session's task slots. On a small
    # state each fit is a chain of short Spark jobs whose scheduling, not their
    # tasks, takes the time, so fits side by side nearly halve it. Each fit is
    # seeded: the models are those fitted one at a time (to rounding). xgb fits
    # one at a time (each holds every slot).
    parallel_fits: int | None = Field(None, ge=1)
    max_iter: int = Field(50, ge=1)
    reg_params: tuple[float, ...] = (0.001, 0.01)
    elastic_net: float = Field(0.0, ge=0.0, le=1.0)
    gbt_max_iter: int = Field(30, ge=1)
    gbt_max_depths: tuple[int, ...] = (3, 5)
    xgb_n_estimators: int = Field(200, ge=1)
    xgb_learning_rate: float = Field(0.1, gt=0.0, le=1.0)
    xgb_max_depths: tuple[int, ...] = (4, 6)
    # Tasks XGBoost trains in, all at once (a barrier stage); None: the
    # session's task slots (local[N]'s N, or spark.cores.max / spark.task.cpus).
    xgb_num_workers: int | None = Field(None, ge=1)
    # "auto" weights classes to balance when the rarer one is under a third of the labels.
    class_weight: Literal["auto", "balanced", "none"] = "auto"
    # Never model inputs unless include_protected is set (recorded on every run).
    protected_attributes: tuple[str, ...] = ("race", "ethnicity", "gender")
    include_protected: bool = False
    # A challenger becomes champion only if it beats the champion on this held-out metric.
    gate_metric: Literal["auc", "log_loss"] = "auc"
    # ... and by more than this many standard errors of the difference (paired,
    # on those rows); 0 promotes any improvement. On a few thousand survey IDs
    # a more flexible learner "wins" by noise as often as not, and each swap
    # changes every voter's score.
    gate_min_se: float = Field(1.0, ge=0.0)
    # A model trains only with at least this many labelled voters.
    min_labels: int = Field(200, ge=10)
    # Without enough survey IDs, support is learnt from party registration
    # (the partisanship model): our party's registrants vs the main opponent's.
    support_proxy: Literal["party", "none"] = "party"
    our_party: Literal["DEM", "REP"] = "DEM"
    # Persuasion outcome: the latest support ID after assignment, from this program only if set.
    persuasion_outcome_program: str | None = None
    # Candidate uplift learners, each put to the gate. Both regress the
    # transformed outcome residualised by an outcome model (support in both
    # arms on every input, penalty uplift_outcome_reg_param): "two_stage" on a
    # quadratic in that model's predicted support, "lasso" on every input with
    # penalty uplift_reg_param (the transformed outcome is mostly noise).
    uplift_learners: tuple[Literal["two_stage", "lasso"], ...] = ("two_stage", "lasso")
    uplift_outcome_reg_param: float = Field(0.01, ge=0.0)
    uplift_reg_param: float = Field(0.03, ge=0.0)
    uplift_elastic_net: float = Field(1.0, ge=0.0, le=1.0)
    # Cross-fitting folds for the out-of-fold Qini and bootstrap draws for its interval.
    uplift_folds: int = Field(5, ge=2)
    bootstrap: int = Field(500, ge=50)

    @property
    def excluded_inputs(self) -> tuple[str, ...]:
        """Feature names kept out of every model."""
        return () if self.include_protected else self.protected_attributes


# The time-travel window every table keeps (docs/storage.md, "Time travel and maintenance"): Delta's
# own default file retention, which maintenance never vacuums below.
TIME_TRAVEL_HOURS = 168.0


class MaintenanceSettings(_Strict):
    """Table maintenance (the maintain job): compaction, Z-order, vacuum."""

    # Files no version within this many hours needs are deleted; at least the
    # promised time-travel window, so every version in it stays readable.
    retention_hours: float = Field(TIME_TRAVEL_HOURS, ge=TIME_TRAVEL_HOURS)
    # Compaction's target file size.
    target_file_mb: int = Field(128, ge=1)
    # Z-order the tables that declare cluster_by (the columns readers filter by).
    zorder: bool = True


class SourceSettings(_Strict):
    """One landing source: where its files are and which layout they follow.

    Its rows land in ``bronze.<name>``; the layout's ``kind`` says what the
    build job makes of them (voters, vote history, contacts, digital events).
    """

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    layout: str
    # A folder (every data file under it) or a single file; relative to ``landing``, or absolute, or a URI.
    path: LocationSetting
    # Only file names matching this glob are read (e.g. ``???_H_*.txt``).
    files: str = "*"
    required: bool = True
    # A delivery's snapshot date comes from, in order: this regex, whose first group
    # is a yyyyMMdd date in the file name; the configured snapshot_date; the data
    # (the latest registration, election or event date in the file). Never the clock.
    snapshot_date_pattern: str | None = None
    snapshot_date: dt.date | None = None


# The synthetic state's sources, in the state's own (NC) layouts.
DEFAULT_SOURCES = (
    SourceSettings(name="ncvoter", layout="nc_ncvoter", path=Path("ncvoter"),
                   snapshot_date_pattern=r"snapshot_(\d{8})"),
    SourceSettings(name="ncvhis", layout="nc_ncvhis", path=Path("ncvhis")),
    SourceSettings(name="contacts", layout="contacts", path=Path("contacts"), required=False),
    SourceSettings(name="digital", layout="digital", path=Path("digital"), required=False),
    SourceSettings(name="experiments", layout="experiments", path=Path("experiments"), required=False),
)


class QualitySettings(_Strict):
    """Data-quality gates: where the suites are and where results go."""

    expectations: Path = CONF_DIR / "expectations"
    results_dir: Path = Path("reports/quality")
    enabled: bool = True


class ResolveConfig(ResolveSettings):
    """Identity resolution: the method, its settings, and whether to retrain.

    With ``method: splink`` the trained model is versioned in MLflow
    (experiment ``<prefix>-resolve-dedupe``); later builds score with the
    latest one, so the same match weights apply across refreshes, unless
    ``retrain`` is set.
    """

    # "splink": the probabilistic Splink models (duplicate registrations, then
    # contacts and digital events), the default because it meets the precision
    # and recall targets at 200k voters; "rules": exact-match rules in plain
    # Spark (votelake.resolve.rules), faster, but it misses the duplicates that
    # differ by a typo and a move (recall about 0.90).
    method: Literal["rules", "splink"] = "splink"
    retrain: bool = False
    # With the model the last build used (Splink), resolve again only the
    # persons a new, changed or removed registration reaches; the clusters
    # equal resolving every registration (votelake.resolve.dedupe._refresh).
    incremental: bool = True


class CalibrationSettings(_Strict):
    """Calibration of the published scores to an election's known precinct totals (the score job).

    Off unless ``results`` is set. Turnout is calibrated to the ballots cast per
    precinct, support to the two-party share of one contest; the shifts are
    solved on the voters as of the election date and applied to today's scores.
    """

    # A MEDSL precinct-results CSV, or a folder of them. A relative path is
    # resolved against ``landing``, like a source's path.
    results: LocationSetting | None = None
    # The contest the support scores are calibrated to, and its district
    # (None: every district of the office in the results).
    office: str = Field("US HOUSE", min_length=1)
    district: str | None = None
    # The election the results are for; default: the latest general election
    # in silver.vote_history (required when there is no vote history).
    election_date: dt.date | None = None
    turnout: bool = True
    support: bool = True
    # The largest precinct shift on the logit scale: a precinct of a handful of
    # voters would otherwise take an extreme shift from its few ballots.
    max_shift: float | None = Field(3.0, gt=0.0)

    @field_validator("district", mode="before")
    @classmethod
    def _district_text(cls, value: Any) -> Any:
        # YAML reads 006 as the number 6; a district is a label.
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @property
    def enabled(self) -> bool:
        """Whether the score job calibrates."""
        return self.results is not None


class PublishSettings(_Strict):
    """The publish gate of a scoring run: how far its score distributions may move from the published run's.

    For each score (turnout, support, persuasion), statewide and in each county
    with at least ``min_county_voters`` voters in both runs, the mean may move
    by at most ``max_mean_shift`` standard deviations of the published run and
    the standard deviation may change by at most a factor ``max_spread_ratio``.
    A run beyond that is not published unless ``force`` is set with a
    ``force_reason`` (both recorded in the commit).
    """

    max_mean_shift: float = Field(0.25, gt=0.0)
    max_spread_ratio: float = Field(1.5, gt=1.0)
    # Counties smaller than this move by chance; they are reported, not gated.
    min_county_voters: int = Field(500, ge=1)
    force: bool = False
    force_reason: str | None = None

    @model_validator(mode="after")
    def _reason_with_force(self) -> "PublishSettings":
        if self.force and not (self.force_reason or "").strip():
            raise ValueError("publish.force needs publish.force_reason (recorded with the publish)")
        return self


Channel = Literal["door", "mail", "phone", "text"]


class UniverseRule(_Strict):
    """One target universe: who (``where``), in which order (``priority``), through which channel."""

    description: str = Field(min_length=1)
    # Spark SQL over gold.voter_scores columns, e.g. "support_score >= 70 AND turnout_score BETWEEN 30 AND 80".
    where: str = Field(min_length=1)
    # Spark SQL; higher first within each turf (county and precinct).
    priority: str = Field(min_length=1)
    # Door and mail programs keep one voter per household.
    channel: Channel

    @field_validator("where", "priority")
    @classmethod
    def _rule(cls, value: str) -> str:
        # Checked here so a hostile rule stops the run before any Spark work;
        # the universes transform checks its columns against the scores.
        parse_rule(value)
        return value


class UniverseSettings(_Strict):
    """Target universes (the universes job) and what suppresses a contact."""

    definitions: dict[str, UniverseRule] = Field(default_factory=dict)
    # Do-not-contact lists: CSV files with state_voter_id and reason columns
    # (relative paths against landing); they suppress every channel.
    lists: tuple[LocationSetting, ...] = ()
    # Contact results and digital events that suppress one channel.
    contact_results: dict[Channel, tuple[str, ...]] = Field(default_factory=lambda: {
        "door": ("MOVED",), "phone": ("WRONG_NUMBER",), "text": ("OPTED_OUT",)})
    digital_events: dict[Channel, tuple[str, ...]] = Field(default_factory=lambda: {"text": ("opt_out",)})
    # Hand-off files: one folder per turf (county and precinct) per universe.
    exports: Path = Path("exports")
    export_format: Literal["csv", "parquet"] = "csv"

    @field_validator("definitions")
    @classmethod
    def _names(cls, value: dict[str, UniverseRule]) -> dict[str, UniverseRule]:
        bad = [n for n in value if not re.fullmatch(r"[a-z][a-z0-9_]*", n)]
        if bad:
            raise ValueError(f"universe names must be lower_snake_case: {bad}")
        return value


class ChannelSettings(_Strict):
    """One contact channel of the allocation: reach, cost, capacity and effect."""

    # Share of attempts that reach the voter (a conversation, a read text).
    contact_rate: float = Field(gt=0.0, le=1.0)
    cost: float = Field(0.0, ge=0.0)  # per attempt
    # Attempts available per county per week (volunteer shifts); None: only the budget limits.
    capacity_per_county_week: int | None = Field(None, ge=0)
    # Statewide money for this channel over the plan; None: only the capacity limits.
    budget: float | None = Field(None, ge=0.0)
    # Turnout points a contact made adds for a voter at 50% turnout propensity
    # (scaled by 4p(1-p): a sure voter or a sure non-voter does not move).
    gotv_effect: float = Field(0.0, ge=0.0, le=1.0)
    # Share of the persuasion model's (door) uplift this channel delivers per contact made.
    persuasion_share: float = Field(1.0, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _limited(self) -> "ChannelSettings":
        if self.capacity_per_county_week is None and self.budget is None:
            raise ValueError("a channel needs capacity_per_county_week or budget")
        if self.budget is not None and self.cost <= 0:
            raise ValueError("a budget needs a cost per attempt")
        return self


class AllocationSettings(_Strict):
    """Allocation of limited contacts across voters to maximise expected net votes (the allocate job)."""

    weeks: int = Field(4, ge=1)
    # Channels in the order they are filled (each voter gets at most one).
    channels: dict[Channel, ChannelSettings] = Field(default_factory=lambda: {
        "door": ChannelSettings(contact_rate=0.3, cost=3.0, capacity_per_county_week=500, gotv_effect=0.07),
        "phone": ChannelSettings(contact_rate=0.15, cost=0.8, budget=20_000.0, gotv_effect=0.03,
                                 persuasion_share=0.5),
        "text": ChannelSettings(contact_rate=0.1, cost=0.05, budget=2_000.0, gotv_effect=0.01,
                                persuasion_share=0.2),
    })
    # Weekly capacity by channel and county id where it differs from the channel's default.
    county_capacity: dict[Channel, dict[int, int]] = Field(default_factory=dict)


# The default inputs of the voter segments: the three published scores, contact
# and digital engagement, participation, and age and registration tenure.
SEGMENT_FEATURES = ("turnout_prob", "support_prob", "persuasion_uplift", "general_rate", "primary_rate",
                    "contacts_made", "digital_events", "digital_clicks", "age", "reg_tenure_years")


class SegmentSettings(_Strict):
    """Voter segments (the segment job): active voters clustered on standardized scores and features.

    Inputs are columns of ``gold.voter_scores`` or ``gold.voter_features``:
    numbers in ``features``, text columns in ``categorical`` (one 0/1 input per
    frequent value). ``model.protected_attributes`` are left out of both unless
    ``include_protected`` is set (recorded on the MLflow run).
    """

    # "bisecting": MLlib's bisecting k-means (a tree of 2-means splits); "kmeans":
    # MLlib's k-means|| (all k at once). On a 10k synthetic state, bisecting's
    # re-fit agreed at ARI 0.99 and k-means' at 0.58 (three runs each).
    algorithm: Literal["bisecting", "kmeans"] = "bisecting"
    k: int = Field(6, ge=2, le=50)
    seed: int = 11
    # A second fit with this seed measures the segments' stability (adjusted Rand index).
    stability_seed: int = 29
    # Each fit keeps the best (lowest within-segment sum of squares) of this many
    # runs, seeded seed, seed + 1, ...: one run can settle in a poor local optimum,
    # and then a re-fit disagrees with it (on a 10k synthetic state, one run's
    # re-fit agreed at ARI 0.81, three runs' at 0.99).
    restarts: int = Field(3, ge=1, le=20)
    max_iter: int = Field(20, ge=1)
    features: tuple[str, ...] = Field(SEGMENT_FEATURES, min_length=1)
    categorical: tuple[str, ...] = ()
    # Values of a categorical input given their own 0/1 input, most frequent first; the rest share none.
    max_levels: int = Field(8, ge=1, le=50)
    include_protected: bool = False
    # Distinguishing features named per segment in its profile.
    top_features: int = Field(3, ge=1, le=20)

    @model_validator(mode="after")
    def _distinct(self) -> "SegmentSettings":
        names = [*self.features, *self.categorical]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"segments: input(s) listed twice: {dupes}")
        bad = [n for n in names if not re.fullmatch(r"[a-z][a-z0-9_]*", n)]
        if bad:
            raise ValueError(f"segments: inputs must be column names (lower_snake_case): {bad}")
        if abs(self.stability_seed - self.seed) < self.restarts:
            raise ValueError("segments.stability_seed must be at least segments.restarts from segments.seed: "
                             "the re-fit shares no run with the fit whose stability it measures")
        return self


class RunSettings(_Strict):
    """Identity of one job run, recorded in the Delta log of every table it writes."""

    # A re-run with the same version commits nothing new to tables it already
    # committed (Delta ``txn``), so a failed multi-table job can simply be re-run.
    # Versions only move forward: a run older than the last committed one is skipped.
    # Default: the run's start time in epoch milliseconds (every run is new).
    version: int | None = Field(None, ge=0)


class Settings(_Strict):
    """The whole run configuration."""

    spark: SparkSettings = SparkSettings()
    storage: StorageSettings = StorageSettings()
    mlflow: MlflowSettings = MlflowSettings()
    synth: SynthSettings = SynthSettings()
    model: ModelSettings = ModelSettings()
    run: RunSettings = RunSettings()
    quality: QualitySettings = QualitySettings()
    resolve: ResolveConfig = ResolveConfig()
    calibration: CalibrationSettings = CalibrationSettings()
    publish: PublishSettings = PublishSettings()
    universes: UniverseSettings = UniverseSettings()
    allocation: AllocationSettings = AllocationSettings()
    segments: SegmentSettings = SegmentSettings()
    maintenance: MaintenanceSettings = MaintenanceSettings()
    # The state whose voters this lakehouse models (two-letter code); contact
    # exports quote this state's voter ids.
    state: str = Field("NC", pattern=r"^[A-Z]{2}$")
    landing: LocationSetting = Path("data/synth/landing")  # a local folder or a URI
    layouts: Path = CONF_DIR / "layouts"
    sources: tuple[SourceSettings, ...] = DEFAULT_SOURCES

    @model_validator(mode="after")
    def _unique_sources(self) -> "Settings":
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sources: duplicate name(s) {dupes}")
        return self

    def source_path(self, source: SourceSettings) -> Location:
        """Absolute location of a source's files (a path, or a URI)."""
        return _against(self.landing, source.path)

    def outputs(self) -> dict[str, Path]:
        """Every local folder or file jobs write, by its config key."""
        out = {"storage.lakehouse": self.storage.lakehouse, "storage.metastore": self.storage.metastore,
               "universes.exports": self.universes.exports, "quality.results_dir": self.quality.results_dir,
               "mlflow.artifact_root": self.mlflow.artifact_root, "synth.out": self.synth.out}
        if self.mlflow.tracking_uri.startswith("sqlite:///"):
            out["mlflow.tracking_uri"] = Path(self.mlflow.tracking_uri[len("sqlite:///"):])
        # A file: URI is checked as the folder it names; any other URI (a cluster's store) is not of this machine.
        local = {k: local_path(v) for k, v in out.items() if v is not None}
        return {k: v if not is_uri(out[k]) else v.resolve() for k, v in local.items() if v is not None}

    def confined(self) -> "Settings":
        """Check that every output lies under ``storage.roots`` (or the temporary folder), never in a system folder.

        Returns:
            The settings, unchanged.

        Raises:
            ValueError: an output outside the roots (without
                ``storage.allow_outside``), or in a system folder; naming the key.
        """
        # Called on resolved settings: roots and outputs are absolute already.
        roots = [*self.storage.roots, Path(tempfile.gettempdir()).resolve()]
        for key, path in self.outputs().items():
            system = next((d for d in SYSTEM_FOLDERS if path == Path(d) or path.is_relative_to(d)), None)
            if system is not None:
                raise ValueError(f"{key}: {path} is inside the system folder {system}; jobs never write there")
            if not self.storage.allow_outside and not any(path.is_relative_to(r) for r in roots):
                raise ValueError(f"{key}: {path} is outside the project roots ({', '.join(map(str, roots))}); "
                                 "add its folder to storage.roots, or set storage.allow_outside: true")
        return self

    def resolved(self) -> "Settings":
        """Return a copy with every relative path made absolute against the CWD.

        A relative path in a user's config file means the directory the job
        starts in; the defaults (package data) are absolute already.

        Returns:
            Settings whose paths and the SQLite tracking URI are absolute, so a
            job behaves the same whatever directory Spark's workers run in
            (``calibration.results``, when relative, against ``landing``).
        """
        tracking = self.mlflow.tracking_uri
        if tracking.startswith("sqlite:///") and not tracking.startswith("sqlite:////"):
            tracking = "sqlite:///" + str(Path(tracking[len("sqlite:///"):]).resolve())
        landing = _absolute(self.landing)
        results = self.calibration.results
        if results is not None:
            results = _absolute(_against(landing, results))
        return self.model_copy(
            update={
                "storage": self.storage.model_copy(
                    update={
                        "lakehouse": _absolute(self.storage.lakehouse),
                        "metastore": (self.storage.metastore.expanduser().resolve()
                                      if self.storage.metastore is not None else None),
                        "catalog": self.storage.catalog.expanduser().resolve(),
                        "contracts": self.storage.contracts.expanduser().resolve(),
                        "roots": tuple(r.expanduser().resolve() for r in self.storage.roots),
                    }
                ),
                "mlflow": self.mlflow.model_copy(
                    update={
                        "tracking_uri": tracking,
                        "artifact_root": self.mlflow.artifact_root.expanduser().resolve(),
                    }
                ),
                "landing": landing,
                "calibration": self.calibration.model_copy(update={"results": results}),
                "universes": self.universes.model_copy(update={
                    "lists": tuple(_absolute(_against(landing, p)) for p in self.universes.lists),
                    "exports": self.universes.exports.expanduser().resolve()}),
                "quality": self.quality.model_copy(
                    update={
                        "expectations": self.quality.expectations.expanduser().resolve(),
                        "results_dir": self.quality.results_dir.expanduser().resolve(),
                    }
                ),
                "layouts": self.layouts.expanduser().resolve(),
                "synth": self.synth.model_copy(
                    update={"out": self.synth.out.expanduser().resolve()}
                ),
            }
        )


def _absolute(location: Location) -> Location:
    """A local path made absolute against the CWD; a URI as it is."""
    return location if is_uri(location) else Path(location).expanduser().resolve()


def _against(base: Location, location: Location) -> Location:
    """``location``, relative to ``base`` when it is a relative local path."""
    if is_uri(location):
        return location
    path = Path(location).expanduser()
    return path if path.is_absolute() else join(base, path)


# Keys under this section are Spark's own dotted keys: the rest of an override's key is one key.
SPARK_CONF_SECTION = ("spark", "conf")


def _set_path(tree: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    if not all(parts):
        raise ConfigError(f"bad override key {dotted!r}")
    if tuple(parts[:2]) == SPARK_CONF_SECTION and len(parts) > 2:
        # spark.conf.spark.executor.memory=6g sets Spark's "spark.executor.memory"; YAML's
        # true/false become Spark's spelling.
        conf = tree.setdefault("spark", {}).setdefault("conf", {})
        conf[".".join(parts[2:])] = str(value).lower() if isinstance(value, bool) else str(value)
        return
    node = tree
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{dotted}: {part!r} is a value, not a section")
        node = child
    node[parts[-1]] = value


def _schema_type(dotted: str) -> Any:
    """The annotation the schema gives a dotted key, or None when no field has that path."""
    annotation: Any = Settings
    for part in dotted.split("."):
        annotation = _without_none(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None:
                return None
            annotation = field.annotation
        elif typing.get_origin(annotation) is dict:
            annotation = typing.get_args(annotation)[1]
        else:
            return None
    return annotation


def _without_none(annotation: Any) -> Any:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else annotation
    return annotation


def _nullable(annotation: Any) -> bool:
    return (typing.get_origin(annotation) in (typing.Union, types.UnionType)
            and type(None) in typing.get_args(annotation))


def _structured(annotation: Any) -> bool:
    inner = _without_none(annotation)
    return typing.get_origin(inner) in (tuple, list, dict) or (
        isinstance(inner, type) and issubclass(inner, BaseModel))


def _typed_value(key: str, raw: str) -> Any:
    """An override's text as the value the schema expects at ``key``.

    Text stays text (pydantic turns "5000" into an int and "true" into a bool
    where the schema says so), so a reason with a colon or a name like "no"
    arrives as written. Lists, mappings and sections are YAML, and so is
    ``null`` where the key may be unset.
    """
    annotation = _schema_type(key)
    if annotation is None:
        return raw  # not a key of the schema: validation names it
    if _structured(annotation) or (_nullable(annotation) and raw.strip() in ("null", "~", "")):
        try:
            return yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{key}: not valid YAML: {exc}") from None
    return raw


def _parse_override(item: str) -> tuple[str, Any]:
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not of the form key=value")
    return key.strip(), _typed_value(key.strip(), raw)


def _env_overrides(environ: Mapping[str, str]) -> list[tuple[str, Any]]:
    found = []
    for name, raw in sorted(environ.items()):
        if name.startswith(ENV_PREFIX) and len(name) > len(ENV_PREFIX):
            key = name[len(ENV_PREFIX):].lower().replace("__", ".")
            found.append((key, _typed_value(key, raw)))
    return found


def _format(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        lines.append(f"  {key}: {e['msg']}" + ("" if e["type"] == "extra_forbidden" else f" (got {e.get('input')!r})"))
    return "invalid configuration:\n" + "\n".join(lines)


def _read_layers(conf_path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """A config file's tree on top of the trees it extends."""
    if not conf_path.is_file():
        raise ConfigError(f"config file not found: {conf_path}")
    if conf_path.resolve() in seen:
        chain = " -> ".join(str(p) for p in (*seen, conf_path.resolve()))
        raise ConfigError(f"extends: a config extends itself: {chain}")
    try:
        tree = yaml.safe_load(conf_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{conf_path}: not valid YAML: {exc}") from exc
    if not isinstance(tree, dict):
        raise ConfigError(f"{conf_path}: top level must be a mapping")
    base = tree.pop("extends", None)
    if base is None:
        return tree
    if not isinstance(base, str) or not base.strip():
        raise ConfigError(f"{conf_path}: extends: a packaged config's name or a YAML path, got {base!r}")
    return _merged(_read_layers(_base_path(base.strip(), conf_path), (*seen, conf_path.resolve())), tree)


def _base_path(base: str, conf_path: Path) -> Path:
    """Where ``extends: base`` points: a packaged config by name, else a path relative to the extending file."""
    if "/" not in base and not base.endswith((".yaml", ".yml")):
        packaged = CONF_DIR / f"{base}.yaml"
        if not packaged.is_file():
            names = sorted(p.stem for p in CONF_DIR.glob("*.yaml") if p.stem != "tables")
            raise ConfigError(f"{conf_path}: extends: no packaged config {base!r} (one of {names}, or a path)")
        return packaged
    target = Path(base).expanduser()
    return target if target.is_absolute() else conf_path.parent / target


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: sections merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in over.items():
        out[key] = (_merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict)
                    else value)
    return out


def load_settings(
    path: str | Path | None = None,
    overrides: Sequence[str] = (),
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Load, override and validate the configuration.

    Args:
        path: YAML file; ``None`` means the embedded default :data:`DEFAULT_CONF`. It may
            ``extends:`` a packaged config by name or another file by path.
        overrides: ``key=value`` strings with dotted keys (``synth.voters=5000``).
        environ: environment to read ``VOTELAKE__*`` overrides from
            (default ``os.environ``).

    Returns:
        Validated settings with absolute paths.

    Raises:
        ConfigError: the file is missing or malformed, or a key or value is invalid.
    """
    tree = _read_layers(Path(path) if path else DEFAULT_CONF, ())
    for key, value in _env_overrides(os.environ if environ is None else environ):
        _set_path(tree, key, value)
    for item in overrides:
        _set_path(tree, *_parse_override(item))
    try:
        settings = Settings.model_validate(tree).resolved()
    except ValidationError as exc:
        raise ConfigError(_format(exc)) from None
    try:
        return settings.confined()
    except ValueError as exc:
        raise ConfigError(f"invalid configuration:\n  {exc}") from None
