"""The model-server options (``--base-url``, ``--model``, ``--api-key``) and their validation.

Their defaults come from ``QWENKIT_BASE_URL``, ``QWENKIT_MODEL`` and ``QWENKIT_API_KEY``. A default read
from the environment is kept as an `EnvValue`, a `str` that remembers its variable, so an error names
what the user actually set: the flag or the variable. Settings are checked before anything is built,
with the backend's own checks (the HTTP client would fail late and obscurely on them), and the error names
the flag or variable.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping

from qwenkit._cli.output import check_text
from qwenkit.errors import ConfigError

# The OpenAI-compatible backend's own checks: one definition of what its HTTP client accepts. They
# describe the problem; the functions below add the flag or variable it came from.
from qwenkit.llm._openai.transport import check_api_key as client_key_check
from qwenkit.llm._openai.transport import check_base_url as client_url_check


class EnvValue(str):
    """A setting's value that came from an environment variable rather than a flag.

    Attributes:
        env: The variable's name, e.g. ``QWENKIT_BASE_URL``.
    """

    env: str

    def __new__(cls, value: str, env: str) -> EnvValue:
        obj = super().__new__(cls, value)
        obj.env = env
        return obj


def setting_name(value: object, flag: str) -> str:
    """How to name a setting in an error: its environment variable if it came from one, else its flag."""
    return value.env if isinstance(value, EnvValue) else flag


def _env_default(env: Mapping[str, str], name: str, fallback: str | None = None) -> str | None:
    value = env.get(name)
    return EnvValue(value, name) if value is not None else fallback


def add_model_options(p: argparse.ArgumentParser, env: Mapping[str, str] | None = None) -> None:
    """Add the options that pick the model server; defaults come from QWENKIT_* environment variables.

    Args:
        p: The subcommand's parser.
        env: Where to read the defaults (default: ``os.environ``).
    """
    env = os.environ if env is None else env
    p.add_argument("--base-url", default=_env_default(env, "QWENKIT_BASE_URL"),
                   help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1 (env QWENKIT_BASE_URL)")
    p.add_argument("--model", default=_env_default(env, "QWENKIT_MODEL"),
                   help="model name on that server (env QWENKIT_MODEL)")
    p.add_argument("--api-key", default=_env_default(env, "QWENKIT_API_KEY", "EMPTY"),
                   help="API key (env QWENKIT_API_KEY)")


def check_base_url(url: str) -> None:
    """Check a model server URL the way the HTTP client will read it, naming the setting in the error.

    Raises:
        ConfigError: The URL is unusable; the message names ``--base-url`` or ``QWENKIT_BASE_URL``.
    """
    name = setting_name(url, "--base-url")
    check_text(url, name)
    if any(ch.isspace() or not ch.isprintable() for ch in url):  # the client would quote them silently
        raise ConfigError(f"{name} {url[:200]!r} contains a space or a control character")
    try:
        client_url_check(url)
    except ConfigError as err:
        raise ConfigError(f"{name}: {err}") from None


def check_api_key(key: str) -> None:
    """Check an API key the way an HTTP ``Authorization`` header needs it; the key is never shown.

    Raises:
        ConfigError: The key cannot be sent; the message names ``--api-key`` or ``QWENKIT_API_KEY``.
    """
    try:
        client_key_check(key)
    except ConfigError as err:
        raise ConfigError(f"{setting_name(key, '--api-key')}: {err}") from None


def check_server_settings(args: argparse.Namespace) -> None:
    """Check ``--base-url``, ``--model`` and ``--api-key`` for a run against a model server.

    Raises:
        ConfigError: A setting is missing or unusable; the message names the flag or the variable.
    """
    check_base_url(args.base_url)
    if not args.model or not args.model.strip():
        raise ConfigError("--model (or QWENKIT_MODEL) is required with --base-url")
    check_text(args.model, setting_name(args.model, "--model"))
    check_api_key(args.api_key)
