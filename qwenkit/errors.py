"""Errors that the CLI reports as one clear line (exit code 2) instead of a traceback."""


class ConfigError(Exception):
    """The user's configuration is wrong: a bad flag, missing data, a server that is down, an unknown model.

    The message is shown to the user as it is, so phrase it as a complete sentence with what to do.
    """
