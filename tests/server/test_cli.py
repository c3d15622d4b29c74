"""``qwenkit serve`` flags: a public bind needs a key; keys from the flag or the environment."""

from __future__ import annotations

import argparse

import pytest

from qwenkit import Agent
from qwenkit.errors import ConfigError
from qwenkit.server.cli import KEY_ENV, main, register, settings_from
from qwenkit.testing import ScriptedModel


def test_public_bind_without_a_key_exits_2_naming_the_flag(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    built: list[Agent] = []

    def factory() -> Agent:
        built.append(Agent(ScriptedModel([])))
        return built[-1]

    code = main(["--host", "0.0.0.0"], agent_factory=factory)
    assert code == 2 and built == []  # refused before anything was built
    err = capsys.readouterr().err
    assert "--host 0.0.0.0" in err and "--api-key" in err and KEY_ENV in err


def test_keys_come_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    from qwenkit.server.cli import add_server_options

    add_server_options(parser)
    monkeypatch.setenv(KEY_ENV, " one, two ,")
    settings = settings_from(parser.parse_args(["--host", "0.0.0.0", "--port", "9001"]))
    assert settings.api_keys == ("one", "two") and settings.requires_key and settings.port == 9001
    flagged = settings_from(parser.parse_args(["--api-key", "three"]))
    assert flagged.api_keys == ("three",) and flagged.host == "127.0.0.1"
    monkeypatch.delenv(KEY_ENV)
    local = settings_from(parser.parse_args([]))
    assert local.api_keys == () and not local.requires_key
    with pytest.raises(ConfigError, match="--port"):
        settings_from(parser.parse_args(["--port", "70000"]))


def test_the_serve_subcommand_keeps_api_key_for_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--api-key", "model-key",
                              "--server-key", "client-key", "--host", "0.0.0.0"])
    assert args.api_key == "model-key"
    settings = settings_from(args, key_flag="--server-key")
    assert settings.api_keys == ("client-key",) and settings.host == "0.0.0.0"
    bare = parser.parse_args(["serve", "--host", "0.0.0.0"])
    with pytest.raises(ConfigError, match="--server-key"):
        settings_from(bare, key_flag="--server-key")
