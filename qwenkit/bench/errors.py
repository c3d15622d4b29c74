"""The benchmarks' errors: each a `qwenkit.errors.BenchError`, one class per thing a user can act on.

Messages say what is wrong; the CLI (`qwenkit.bench.cli`) adds the flag or command that fixes it, by class.
"""

from __future__ import annotations

from qwenkit.errors import BenchError


class MissingData(BenchError):
    """A benchmark's data folder or file does not exist."""


class BadData(BenchError):
    """A benchmark's data file is malformed (not UTF-8, not JSON Lines, or records of the wrong shape)."""


class UnknownRecords(BenchError):
    """Records asked for by id are not in the benchmark's data (or not among the categories chosen)."""


class ResultsFileError(BenchError):
    """An existing results file cannot be resumed: it is not a qwenkit results file, or it was edited."""


class ResultsExist(BenchError):
    """The output folder already holds results and the caller chose neither to resume nor to start over."""


class ConfigChanged(BenchError):
    """The results file was written with another configuration than the one asked to resume it."""


class OutputUnusable(BenchError):
    """The output folder (or a file in it) cannot be created or written."""


__all__ = ["BadData", "BenchError", "ConfigChanged", "MissingData", "OutputUnusable", "ResultsExist",
           "ResultsFileError", "UnknownRecords"]
