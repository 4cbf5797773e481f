"""Configuration: typed, validated, overridable; bad keys fail before Spark starts."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from votelake.config import CONF_DIR, DEFAULT_CONF, ConfigError, load_settings
from votelake.session import slots_of, stated_slots


def test_default_config_is_the_embedded_local_one():
    settings = load_settings(environ={})
    assert settings.spark.master == "local[*]"
    assert settings.synth.voters == 200_000
    assert settings.mlflow.tracking_uri.startswith("sqlite:////")  # made absolute
    assert settings.storage.lakehouse.is_absolute() and settings.storage.lakehouse.name == "lakehouse"


def test_cli_override_beats_environment_beats_file():
    env = {"VOTELAKE__SYNTH__VOTERS": "5000", "VOTELAKE__SYNTH__SEED": "3"}
    settings = load_settings(None, ["synth.voters=7000"], environ=env)
    assert (settings.synth.voters, settings.synth.seed) == (7000, 3)


@pytest.mark.parametrize(
    "override, named",
    [
        ("synth.voterz=5", "synth.voterz"),
        ("sparkk.master=local", "sparkk"),
        ("synth.voters=many", "synth.voters"),
        ("model.test_fraction=1.5", "model.test_fraction"),
        ("storage.backend=delta-rs", "storage.backend"),  # gone: delta-spark writes every table
        ("maintenance.retention_hours=24", "maintenance.retention_hours"),  # below the time-travel window
        ("spark.remote=http://x", "spark.remote"),
        ("model.target_election={date: 2026-11-03, expected_turnout: 55}", "model.target_election.expected_turnout"),
        # Runs, models and reports go to another host only when asked to.
        ("mlflow.tracking_uri=https://mlflow.example.org", "mlflow.allow_remote"),
        ("mlflow.tracking_uri=ftp://example.org/runs", "mlflow.tracking_uri"),
        # Outputs stay under the project's roots, and never in a system folder.
        ("storage.lakehouse=/etc", "storage.lakehouse"),
        ("universes.exports=/etc/cron.d", "universes.exports"),
        ("mlflow.tracking_uri=sqlite:////usr/lib/mlflow.db", "mlflow.tracking_uri"),
        ("quality.results_dir=/opt/reports", "quality.results_dir"),
    ],
)
def test_bad_key_or_value_fails_naming_the_key(override, named):
    with pytest.raises(ConfigError) as err:
        load_settings(None, [override], environ={})
    assert named in str(err.value)


def test_outputs_elsewhere_need_a_root_or_allow_outside_but_never_a_system_folder(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings(None, ["storage.lakehouse=lake"], environ={}).storage.lakehouse == tmp_path / "lake"
    assert load_settings(None, ["storage.lakehouse=/opt/lake", "storage.roots=[/opt, .]"],
                         environ={}).storage.lakehouse == Path("/opt/lake")
    assert load_settings(None, ["storage.lakehouse=/opt/lake", "storage.allow_outside=true"],
                         environ={}).storage.lakehouse == Path("/opt/lake")
    with pytest.raises(ConfigError, match="system folder /etc"):
        load_settings(None, ["storage.lakehouse=/etc/lake", "storage.allow_outside=true"], environ={})


def test_unknown_key_in_file_fails(tmp_path: Path):
    conf = tmp_path / "bad.yaml"
    conf.write_text(DEFAULT_CONF.read_text() + "\nextra_section:\n  x: 1\n")
    with pytest.raises(ConfigError, match="extra_section"):
        load_settings(conf, environ={})


def test_spark_conf_override_takes_sparks_own_dotted_key():
    settings = load_settings(None, ["spark.conf.spark.executor.memory=6g", "spark.conf.spark.eventLog.enabled=true",
                                    "spark.master=spark://127.0.0.1:7077"], environ={})
    assert settings.spark.conf == {**load_settings(environ={}).spark.conf,  # the file's own conf stays
                                   "spark.executor.memory": "6g", "spark.eventLog.enabled": "true"}
    assert settings.spark.master == "spark://127.0.0.1:7077"


def test_override_needs_key_value_form():
    with pytest.raises(ConfigError, match="key=value"):
        load_settings(None, ["synth.voters"], environ={})


def test_metastore_paths_are_absolute_and_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert load_settings(environ={}).storage.metastore == tmp_path / "metastore"
    assert load_settings(None, ["storage.metastore=null"], environ={}).storage.metastore is None


def test_a_state_config_extends_local_and_overrides_only_what_it_sets(tmp_path: Path):
    conf = tmp_path / "mystate.yaml"
    conf.write_text("extends: local\nstate: OH\nlanding: oh\n"
                    "sources:\n  - {name: oh_swvf, layout: oh_swvf, path: .}\n"
                    "spark:\n  shuffle_partitions: 2\n  conf: {spark.executor.cores: '1'}\n")
    local, mine = load_settings(environ={}), load_settings(conf, environ={})
    # Sections merge key by key: memory and the rest of spark come from local.yaml.
    assert (mine.spark.driver_memory, mine.spark.shuffle_partitions) == (local.spark.driver_memory, 2)
    assert mine.spark.conf == {**local.spark.conf, "spark.executor.cores": "1"}
    # Lists replace.
    assert [s.name for s in mine.sources] == ["oh_swvf"]
    assert mine.universes == local.universes and mine.model == local.model


def test_extends_follows_a_relative_path_chain_and_refuses_a_cycle(tmp_path: Path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "team.yaml").write_text("extends: local\nsynth: {voters: 3000}\n")
    (tmp_path / "state.yaml").write_text("extends: base/team.yaml\nsynth: {seed: 5}\n")
    settings = load_settings(tmp_path / "state.yaml", environ={})
    assert (settings.synth.voters, settings.synth.seed, settings.spark.driver_memory) == (3000, 5, "8g")
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_settings(tmp_path / "a.yaml", environ={})
    (tmp_path / "c.yaml").write_text("extends: nosuchbase\n")
    with pytest.raises(ConfigError, match="nosuchbase"):
        load_settings(tmp_path / "c.yaml", environ={})


def test_without_extends_a_config_gets_the_schema_defaults_with_locals_memory(tmp_path: Path):
    conf = tmp_path / "bare.yaml"
    conf.write_text("state: FL\n")
    settings = load_settings(conf, environ={})
    assert settings.spark.driver_memory == load_settings(environ={}).spark.driver_memory
    assert settings.universes.definitions == {} and settings.calibration.results is None


@pytest.mark.parametrize("shipped", ["oh_2021", "fl_2016", "nc_chatham_2018"])
def test_shipped_state_configs_extend_local(shipped):
    settings = load_settings(CONF_DIR / f"{shipped}.yaml", environ={})
    local = load_settings(environ={})
    assert settings.spark.driver_memory == local.spark.driver_memory
    assert settings.storage.metastore != local.storage.metastore  # one embedded metastore per state
    assert settings.model.persuasion_outcome_program is None


def test_overrides_are_text_unless_the_schema_types_them():
    settings = load_settings(None, [
        "publish.force=true", "publish.force_reason=rerun: the 2026-11 file, see ticket #12",
        "calibration.district=006", "synth.voters=5000", "model.learners=[lr]",
        "calibration.election_date=2024-11-05", "mlflow.experiment_prefix=no"], environ={})
    assert settings.publish.force_reason == "rerun: the 2026-11 file, see ticket #12"
    assert settings.calibration.district == "006"  # not the number 6
    assert settings.mlflow.experiment_prefix == "no"  # not YAML's false
    assert (settings.publish.force, settings.synth.voters, settings.model.learners) == (True, 5000, ("lr",))
    assert str(settings.calibration.election_date) == "2024-11-05"
    env = load_settings(None, environ={"VOTELAKE__PUBLISH__FORCE": "true",
                                       "VOTELAKE__PUBLISH__FORCE_REASON": "a: b"})
    assert env.publish.force_reason == "a: b"
    with pytest.raises(ConfigError, match="spark.driver_memory"):
        load_settings(None, ["spark.driver_memory=lots"], environ={})


@pytest.mark.parametrize("conf, slots", [
    ({"spark.master": "local[2]"}, 2),
    ({"spark.master": "local"}, 1),
    ({"spark.master": "local[*]"}, os.cpu_count()),
    ({"spark.master": "local[4,3]", "spark.task.cpus": "2"}, 2),
    ({"spark.master": "spark://127.0.0.1:7077", "spark.cores.max": "8"}, 8),
    ({"spark.master": "yarn", "spark.executor.instances": "3", "spark.executor.cores": "4"}, 12),
    ({"spark.master": "spark://127.0.0.1:7077"}, 1),  # the configuration does not say: one task, never a wait
])
def test_boosting_trains_in_the_task_slots_the_configuration_states(conf, slots):
    assert slots_of(conf) == slots


def test_slots_a_configuration_does_not_state_are_unknown_not_one():
    # Model rows are merged to the stated slots; a cluster that does not say keeps its partitions.
    assert stated_slots({"spark.master": "spark://127.0.0.1:7077"}) is None
    assert stated_slots({"spark.master": "spark://127.0.0.1:7077", "spark.cores.max": "8"}) == 8


def test_a_lakehouse_and_landing_on_a_store_keep_their_uris(tmp_path: Path):
    from votelake.lakehouse import load_catalog

    settings = load_settings(None, ["storage.lakehouse=s3a://bucket/lake/", "landing=s3a://bucket/landing",
                                    "storage.metastore=null", "resolve.work_dir=abfss://box@acct.dfs.core/x",
                                    "calibration.results=results"], environ={})
    assert settings.storage.lakehouse == "s3a://bucket/lake/"  # not s3a:/bucket, nor made relative to the CWD
    assert load_catalog(settings)["silver.persons"].uri == "s3a://bucket/lake/silver/persons"
    assert [settings.source_path(s) for s in settings.sources][:2] == ["s3a://bucket/landing/ncvoter",
                                                                      "s3a://bucket/landing/ncvhis"]
    assert settings.calibration.results == "s3a://bucket/landing/results"
    assert settings.resolve.work_dir == "abfss://box@acct.dfs.core/x"
    # A file: URI names a folder of this machine: the same confinement as a path.
    with pytest.raises(ConfigError, match="storage.lakehouse: /etc/lake is inside the system folder /etc"):
        load_settings(None, ["storage.lakehouse=file:///tmp/../etc/lake", "storage.allow_outside=true"],
                      environ={})
    lake = load_settings(None, [f"storage.lakehouse=file://{tmp_path}/lake"], environ={}).storage.lakehouse
    assert lake == f"file:{tmp_path}/lake"  # as Hadoop names it, which Delta compares a new table's location with
