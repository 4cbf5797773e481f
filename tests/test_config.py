"""Configuration: typed, validated, overridable; bad keys fail before Spark starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from votelake.config import DEFAULT_CONF, ConfigError, load_settings


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
    ],
)
def test_bad_key_or_value_fails_naming_the_key(override, named):
    with pytest.raises(ConfigError) as err:
        load_settings(None, [override], environ={})
    assert named in str(err.value)


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
