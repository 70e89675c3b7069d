"""Settings: defaults, errors that name the variable, secrets from the state dir, README in step."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.settings import PROJECT_ROOT, Settings, SettingsError, markdown_table


def test_defaults_are_loopback_and_demo_is_off() -> None:
    s = Settings.from_env({})
    assert (s.http_host, s.http_port, s.sip_bind) == ("127.0.0.1", 8080, "127.0.0.1")
    assert s.demo is False
    # two channels per call, two ports each, and the recording line's own pairs
    assert s.rtp_end - s.rtp_start + 1 == 4 * s.max_channels + 2 * s.ivr_max_calls
    assert s.app_name.startswith("vocalcast-")


@pytest.mark.parametrize(
    ("env", "value", "fragment"),
    [
        ("VOCALCAST_HTTP_PORT", "http", "VOCALCAST_HTTP_PORT"),
        ("VOCALCAST_HTTP_PORT", "70000", "port out of range"),
        ("VOCALCAST_DEMO", "maybe", "VOCALCAST_DEMO"),
        ("VOCALCAST_STATE_DIR", "relative/dir", "absolute"),
        ("VOCALCAST_RTP_END", "20010", "too small"),
        ("VOCALCAST_RECORDING_NUMBER", "+33172360170", "national"),
        ("VOCALCAST_NODE", "bad node!", "VOCALCAST_NODE"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(env: str, value: str, fragment: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({env: value})
    assert fragment in str(err.value)


def test_missing_secret_names_its_variable(tmp_path: Path) -> None:
    s = Settings.from_env({"VOCALCAST_STATE_DIR": str(tmp_path)})
    with pytest.raises(SettingsError, match="VOCALCAST_ARI_PASSWORD"):
        s.require("ari_password")


def test_secrets_come_from_the_state_dir_and_are_masked(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "VOCALCAST_ARI_PASSWORD").write_text("from-file\n")
    s = Settings.from_env({"VOCALCAST_STATE_DIR": str(tmp_path)})
    assert s.require("ari_password") == "from-file"
    assert s.masked()["VOCALCAST_ARI_PASSWORD"] == "***"
    env_wins = Settings.from_env({"VOCALCAST_STATE_DIR": str(tmp_path), "VOCALCAST_ARI_PASSWORD": "env"})
    assert env_wins.ari_password == "env"


def test_dsn_quotes_the_generated_password(tmp_path: Path) -> None:
    s = Settings.from_env({"VOCALCAST_STATE_DIR": str(tmp_path), "VOCALCAST_DB_PASSWORD": "a/b@c"})
    assert s.dsn == "postgresql://vocalcast:a%2Fb%40c@127.0.0.1:15432/vocalcast"
    external = Settings.from_env({"VOCALCAST_DATABASE_URL": "postgresql://x@db/y"})
    assert external.dsn == "postgresql://x@db/y"


def test_readme_configuration_table_lists_every_setting() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    start = readme.index("<!-- settings:begin -->\n") + len("<!-- settings:begin -->\n")
    end = readme.index("\n<!-- settings:end -->")
    assert readme[start:end] == markdown_table(), "regenerate with: .venv/bin/python -m engine.settings"


def test_numbers_are_kept_at_least_the_60_days_the_french_law_caps_read() -> None:
    with pytest.raises(SettingsError, match="VOCALCAST_RETENTION_NUMBERS_DAYS"):
        Settings.from_env({"VOCALCAST_RETENTION_NUMBERS_DAYS": "59"})
    assert Settings.from_env({"VOCALCAST_RETENTION_NUMBERS_DAYS": "60"}).retention_numbers_days == 60
    assert Settings.from_env({}).retention_numbers_days == 365
