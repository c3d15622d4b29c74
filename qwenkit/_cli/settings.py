"""The model-server options (``--base-url``, ``--model``, ``--api-key``) and their validation.

Their defaults come from ``QWENKIT_BASE_URL``, ``QWENKIT_MODEL`` and ``QWENKIT_API_KEY``. ``--base-url`` is
repeatable, and ``QWENKIT_BASE_URL`` may hold several URLs separated by commas or spaces: several URLs are
replicas of one model, which `OpenAICompatible` balances requests over (`server_urls` gives the list). A default read
from the environment is kept as an `EnvValue`, a `str` that remembers its variable, so an error names
what the user actually set: the flag or the variable. Settings are checked before anything is built,
with the backend's own checks (the HTTP client would fail late and obscurely on them), and the error names
the flag or variable.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

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


# A comma or white space starts a new URL only where a scheme follows, so that one URL with a stray space
# inside ("http://h :8000/v1") stays one URL and is refused for its space, not cut into two wrong URLs.
_URL_SEPARATOR = re.compile(r"[,\s]+(?=[A-Za-z][A-Za-z0-9+.-]*://)")
_EDGE = ", \t\r\n"


def split_urls(value: str) -> list[str]:
    """The URLs in one ``--base-url`` value or ``QWENKIT_BASE_URL``: separated by commas or white space.

    Separators at either end are dropped; each URL keeps the variable it came from (an `EnvValue`).
    An empty value gives no URL (no model server, as before several were allowed).
    """
    pieces = [p for p in _URL_SEPARATOR.split(value.strip(_EDGE)) if p]
    if isinstance(value, EnvValue):
        return [EnvValue(p, value.env) for p in pieces]
    return pieces


class _AppendUrls(argparse.Action):
    """``--base-url``, repeatable: every use adds replicas; the flags replace ``QWENKIT_BASE_URL``'s URLs.

    ``base_urls`` gets the whole list; ``base_url`` stays one URL (the first), as code and scripts written
    for a single server read it.
    """

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        urls = getattr(namespace, "base_urls", None)
        if not isinstance(urls, list):  # the default (a tuple, from the environment): the flags replace it
            urls = []
        urls.extend(split_urls(str(values)))
        namespace.base_urls = urls
        namespace.base_url = urls[0] if urls else ""


def add_model_options(p: argparse.ArgumentParser, env: Mapping[str, str] | None = None) -> None:
    """Add the options that pick the model server; defaults come from QWENKIT_* environment variables.

    ``--base-url`` may be given several times (replicas of one model); `server_urls` reads the list back.

    Args:
        p: The subcommand's parser.
        env: Where to read the defaults (default: ``os.environ``).
    """
    env = os.environ if env is None else env
    from_env = _env_default(env, "QWENKIT_BASE_URL")
    env_urls = tuple(split_urls(from_env)) if from_env is not None else ()
    first: str | None = None
    if from_env is not None:  # an empty variable stays "set but empty": no server, as a missing one
        first = env_urls[0] if env_urls else EnvValue("", "QWENKIT_BASE_URL")
    p.add_argument("--base-url", action=_AppendUrls, metavar="URL", default=first,
                   help="OpenAI-compatible server URL, e.g. http://127.0.0.1:8000/v1; repeat it for replicas of "
                        "one model, requests go to the least busy (env QWENKIT_BASE_URL, several separated by "
                        "commas or spaces)")
    p.set_defaults(base_urls=env_urls)  # a tuple: `_AppendUrls` tells the environment's list from the flags'
    p.add_argument("--model", default=_env_default(env, "QWENKIT_MODEL"),
                   help="model name on that server (env QWENKIT_MODEL)")
    p.add_argument("--api-key", default=_env_default(env, "QWENKIT_API_KEY", "EMPTY"),
                   help="API key (env QWENKIT_API_KEY)")


def server_urls(args: argparse.Namespace) -> list[str]:
    """The model server URLs the flags or ``QWENKIT_BASE_URL`` give (empty: no server, the embedded model).

    Reads ``base_urls`` (set by `add_model_options`), else splits ``base_url`` (a namespace built by hand).
    """
    urls = getattr(args, "base_urls", None)
    if urls is None:
        raw = getattr(args, "base_url", None)
        if raw is None:
            return []
        urls = split_urls(raw) if isinstance(raw, str) else list(raw)
    return [u for u in urls if u]


def check_base_url(url: str | Sequence[str]) -> None:
    """Check model server URLs the way the HTTP client will read them, naming the setting in the error.

    Args:
        url: One URL, or the list of replicas' URLs (see `server_urls`): each is checked, and none may be
            given twice.

    Raises:
        ConfigError: A URL is unusable; the message names ``--base-url`` or ``QWENKIT_BASE_URL`` and, among
            several, which URL it is.
    """
    urls = [url] if isinstance(url, str) else list(url)
    seen: set[str] = set()
    for number, one in enumerate(urls, 1):
        name = setting_name(one, "--base-url")
        if len(urls) > 1:
            name = f"{name} (URL {number} of {len(urls)})"
        _check_one_url(one, name)
        if one in seen:
            raise ConfigError(f"{name}: the model server URL {one[:200]!r} is given more than once")
        seen.add(one)


def _check_one_url(url: str, name: str) -> None:
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
    check_base_url(server_urls(args))
    if not args.model or not args.model.strip():
        raise ConfigError("--model (or QWENKIT_MODEL) is required with --base-url")
    check_text(args.model, setting_name(args.model, "--model"))
    check_api_key(args.api_key)
