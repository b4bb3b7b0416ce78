"""Settings: defaults, then SNAKES_* environment variables, then the test mapping; all documented."""
from __future__ import annotations

import pytest

from snakes_web.config import SETTINGS, ConfigError, load_settings


def test_defaults() -> None:
    settings = load_settings(environ={})
    assert settings["MODEL"] == "models/export.pkl"
    assert settings["ALLOW_PRIVATE_URLS"] is False


def test_the_environment_overrides_defaults() -> None:
    settings = load_settings(environ={"SNAKES_MODEL": "/m/x.pkl", "SNAKES_ALLOW_PRIVATE_URLS": "yes",
                                      "SNAKES_FETCH_TIMEOUT": "2.5"})
    assert settings["MODEL"] == "/m/x.pkl" and settings["ALLOW_PRIVATE_URLS"] is True
    assert settings["FETCH_TIMEOUT"] == 2.5


def test_the_mapping_overrides_the_environment() -> None:
    settings = load_settings(environ={"SNAKES_MODEL": "/env.pkl"}, overrides={"MODEL": "/test.pkl"})
    assert settings["MODEL"] == "/test.pkl"


@pytest.mark.parametrize("name, raw", [("SNAKES_MAX_UPLOAD_BYTES", "lots"),
                                       ("SNAKES_ALLOW_PRIVATE_URLS", "perhaps")])
def test_a_bad_environment_value_names_the_variable(name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=name):
        load_settings(environ={name: raw})


def test_an_unknown_lowercase_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings(environ={}, overrides={"modle": "x"})


def test_every_setting_has_help() -> None:
    assert all(setting.help.strip() for setting in SETTINGS)
