"""``qwenkit bench bfcl|tooluse|codeinterp|fetch``: run a benchmark against an OpenAI-compatible server.

Each run writes ``<out>/results.jsonl`` (one line per finished record, resumable with ``--resume``),
``<out>/report.json``, ``<out>/report.md`` and ``<out>/scores.png``.

The library's errors describe the problem; this module adds, by error class, the flag or command that
fixes it (`_hints`), and refuses nonsense values (``--timeout 0``, ``--limit -1``) when the flags are parsed.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape

from qwenkit._cli.args import non_negative_float, positive_float, positive_int, seed
from qwenkit.bench.errors import (
    ConfigChanged,
    MissingData,
    OutputUnusable,
    ResultsExist,
    ResultsFileError,
    UnknownRecords,
)
from qwenkit.bench.report import write_report
from qwenkit.bench.results import BenchTask, Summary
from qwenkit.bench.runner import prepare_out_dir, run_bench
from qwenkit.errors import ConfigError, QwenkitError
from qwenkit.llm.base import Sampling

if TYPE_CHECKING:
    from qwenkit.llm.openai_compat import OpenAICompatible

# ``auto`` asks the server how its chat template writes a tool call (`resolve_auto_format`).
FORMATS = ("auto", "nous", "qwen", "react", "qwen3_coder", "native")

_RUN_HINTS: Mapping[type[QwenkitError], str] = {
    ResultsExist: "Pass --resume to continue that run, --overwrite to start over, or choose another --out.",
    ConfigChanged: "Resume with the same options, choose another --out, or pass --overwrite.",
    ResultsFileError: "Move it away, choose another --out, or pass --overwrite.",
    OutputUnusable: "Choose another --out.",
}
_BFCL_DATA_HINT = "Run 'qwenkit bench fetch bfcl' or pass --data-dir DIR with the BFCL_v4_*.json files."


@contextmanager
def _hints(hints: Mapping[type[QwenkitError], str]) -> Iterator[None]:
    """Append to an error's message the flag or command that fixes it (the first class it is an instance of)."""
    try:
        yield
    except QwenkitError as exc:
        hint = next((h for cls, h in hints.items() if isinstance(exc, cls)), None)
        if hint is not None:
            exc.args = (f"{str(exc).rstrip()} {hint}",)
        raise


def _add_run_options(p: argparse.ArgumentParser, default_format: str) -> None:
    from qwenkit._cli.settings import add_model_options

    add_model_options(p)
    p.set_defaults(check=_check_run)
    p.add_argument("--format", default=default_format, choices=FORMATS,
                   help=f"prompt format (default {default_format})")
    p.add_argument("--out", help="output folder (default: bench-runs/<bench>-<format>-<model>)")
    p.add_argument("--concurrency", type=positive_int, default=16, help="requests in flight (default 16)")
    p.add_argument("--timeout", type=positive_float, default=300.0, help="seconds per record (default 300)")
    p.add_argument("--request-timeout", type=positive_float, default=120.0,
                   help="seconds per HTTP request (default 120)")
    p.add_argument("--temperature", type=non_negative_float, default=0.0, help="sampling temperature (default 0)")
    p.add_argument("--seed", type=seed, default=0, help="sampling seed sent with every request (default 0)")
    p.add_argument("--max-tokens", type=positive_int, default=1024, help="tokens per reply (default 1024)")
    p.add_argument("--limit", type=positive_int, help="only the first N records of each category")
    p.add_argument("--resume", action="store_true", help="continue the results file in --out (same options)")
    p.add_argument("--retry-errors", action="store_true", help="with --resume, re-do records that errored")
    p.add_argument("--overwrite", action="store_true", help="delete an existing results file first")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(subparsers: Any) -> None:
    """Add ``bench`` and its subcommands to the ``qwenkit`` parser."""
    bench = subparsers.add_parser("bench", help="run tool-calling benchmarks (BFCL, tool-use, code interpreter)")
    sub = bench.add_subparsers(dest="bench_command", required=True)

    p = sub.add_parser("bfcl", help="BFCL v4: single-turn and multi-turn categories, FC or prompt mode")
    _add_run_options(p, "nous")
    for action in p._actions:
        if action.dest == "format":  # BFCL also has the pythonic format of its own prompt mode
            action.choices = (*FORMATS, "pythonic")
            action.default = None
            action.help = "prompt format (default nous; pythonic with --mode prompt; auto: from the server's template)"
    p.add_argument("--categories", default="simple_python,multiple,parallel,parallel_multiple,irrelevance",
                   help="comma-separated BFCL categories or groups: all, single_turn, non_live, live, multi_turn, "
                        "python, non_python, or single names")
    p.add_argument("--ids", help="only these records (comma-separated ids, e.g. multi_turn_base_100), of the "
                                 "categories given")
    p.add_argument("--mode", choices=("fc", "prompt"), default="fc",
                   help="fc: the chosen qwenkit format (default); prompt: BFCL's own prompt-mode system prompt "
                        "and decoding (pythonic)")
    p.add_argument("--data-dir", help="folder with BFCL_v4_*.json (default: $QWENKIT_BFCL_DIR, else the fetch cache)")
    p.set_defaults(handler=_bfcl)

    p = sub.add_parser("tooluse", help="Qwen's tool-use metrics (selection, input ROUGE-L, false positives)")
    _add_run_options(p, "react")
    p.add_argument("--positive", help="Qwen's exam_plugin_*_react_positive.jsonl (with --negative)")
    p.add_argument("--negative", help="Qwen's exam_plugin_*_react_negative.jsonl")
    p.add_argument("--data-dir", help="BFCL data folder for the BFCL-derived sets (used without --positive)")
    p.add_argument("--tokenizer", default="auto",
                   help="ROUGE-L tokenizer: auto (pulled Qwen GGUF, else whitespace), store[:NAME], gguf:PATH, "
                        "whitespace")
    p.set_defaults(handler=_tooluse)

    p = sub.add_parser("codeinterp", help="code-interpreter benchmark (math, visualization, executable rate)")
    _add_run_options(p, "react")
    p.add_argument("--tasks", help="Qwen-Agent eval_code_interpreter_v1.jsonl to run instead of the built-in set")
    p.add_argument("--files-dir", help="folder with the input files of --tasks (its input_file_path entries)")
    p.add_argument("--exec-timeout", type=positive_float, default=60.0, help="seconds per code cell (default 60)")
    p.add_argument("--vis-judge-model", help="vision model that judges the plots (any OpenAI-compatible server)")
    p.add_argument("--vis-judge-base-url", help="its server URL (default: --base-url)")
    p.add_argument("--vis-judge-api-key", default=None, help="its API key (default: --api-key)")
    p.set_defaults(handler=_codeinterp)

    p = sub.add_parser("show", help="print one record of a results file (a multi-turn record's trajectory)")
    p.add_argument("run_dir", help="the run's output folder (or its results.jsonl)")
    p.add_argument("id", help="the record id, e.g. multi_turn_base_0")
    p.set_defaults(handler=_show)

    p = sub.add_parser("fetch", help="download benchmark data")
    p.add_argument("what", choices=["bfcl"], help="which data")
    p.add_argument("--dest", help="target folder (default: the cache qwenkit bench bfcl reads)")
    p.add_argument("--wheel", help="extract from this bfcl-eval wheel instead of downloading it")
    p.set_defaults(handler=_fetch)


# ------------------------------------------------------------------------------------------ helpers

def _check_run(args: argparse.Namespace) -> None:
    """Check the server settings before anything is built (called by `qwenkit.cli.parse_args`)."""
    from qwenkit._cli.settings import check_server_settings, server_urls

    if not server_urls(args):
        raise ConfigError("no model server: pass --base-url (or set QWENKIT_BASE_URL).")
    if not args.model:
        raise ConfigError("no model name: pass --model (or set QWENKIT_MODEL).")
    check_server_settings(args)


def _sampling(args: argparse.Namespace) -> Sampling:
    return Sampling(temperature=args.temperature, seed=args.seed, max_tokens=args.max_tokens)


def _out_dir(args: argparse.Namespace, bench: str) -> Path:
    if args.out:
        return Path(args.out)
    if getattr(args, "mode", "fc") == "prompt":
        bench = f"{bench}-prompt"
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{bench}-{args.format}-{args.model}")
    return Path("bench-runs") / safe


async def preflight(model: OpenAICompatible) -> None:
    """Check every server answers and serves the model, before any record is sent.

    `OpenAICompatible.check` asks each replica's ``/v1/models``; a replica that does not answer while
    others do is reported on stderr and rests (its records go to the others). Each answering replica is
    then asked once with the API key, since ``/v1/models`` may answer without one.

    Raises:
        ConfigError: No server answers (the message names each), one refuses the API key, or one does not
            list the model (the message names the replica that differs from the others).
    """
    import openai

    from qwenkit.errors import ModelError

    try:
        await model.check()
    except ModelError as exc:  # nothing answered: a setting (or a server to start), not a model failure
        several = len(model.base_urls) > 1
        raise ConfigError(f"{exc}; {'are they' if several else 'is it'} running?") from None
    down = [r for r in model.replicas if r.failures]
    if down:
        Console(stderr=True).print(
            f"[yellow]note:[/yellow] {len(down)} of {len(model.replicas)} model servers did not answer; their "
            f"requests go to the others: {escape('; '.join(r.last_error for r in down))}", highlight=False)

    async def key_refused(url: str, client: openai.AsyncOpenAI) -> str | None:
        try:
            await client.with_options(timeout=15.0).models.list()
        except openai.APIStatusError as exc:
            if exc.status_code in (401, 403):
                return f"the model server at {url} refused the API key (HTTP {exc.status_code})."
        except (openai.OpenAIError, ValueError, TypeError, AttributeError):
            pass  # check() judged the answer already; the first request tells the rest
        return None

    refused = await asyncio.gather(*(key_refused(r.url, r.client) for r in model.replicas if not r.failures))
    for message in refused:
        if message is not None:
            raise ConfigError(message)


def _model(args: argparse.Namespace) -> OpenAICompatible:
    from qwenkit._cli.settings import server_urls
    from qwenkit.llm.openai_compat import OpenAICompatible

    _check_run(args)  # also when called without qwenkit.cli.parse_args (tests, embedding)
    # Several URLs are replicas of one model: each record goes to the least busy one.
    return OpenAICompatible(args.model, server_urls(args), args.api_key, timeout=args.request_timeout)


def resolve_auto_format(args: argparse.Namespace) -> None:
    """Replace ``--format auto`` by the format the server's chat template writes tool calls in.

    vLLM renders a probe conversation through ``/tokenize``; a server that shows nothing gets ``nous``. The
    choice is printed (one line on stderr) and stored in ``args.format``, so the run's folder name, its
    resumable configuration and its report all name the concrete format.
    """
    if args.format != "auto":
        return
    from qwenkit._cli.settings import server_urls
    from qwenkit.errors import ModelError
    from qwenkit.llm.autoformat import DEFAULT_FORMAT, FormatChoice, choose_format
    from qwenkit.llm.openai_compat import OpenAICompatible

    async def probe() -> FormatChoice:
        # A client of its own: the run's client is used on the run's event loop only.
        async with OpenAICompatible(args.model, server_urls(args), args.api_key, timeout=30.0) as model:
            try:
                return choose_format(await model.template_info())
            except ModelError as exc:  # the preflight that follows reports an unreachable server
                return FormatChoice(DEFAULT_FORMAT, f"the server did not show its template ({exc})")

    choice = asyncio.run(probe())
    args.format = choice.name
    Console(stderr=True, soft_wrap=True).print(f"prompt format: {choice.name} ({escape(choice.reason)})",
                                               highlight=False)


def _run(args: argparse.Namespace, task: BenchTask, bench: str, console: Console, model: OpenAICompatible) -> int:
    out = _out_dir(args, bench)

    async def go() -> tuple[Any, Summary]:
        try:
            prepare_out_dir(out)  # an unusable --out fails before any request
            await preflight(model)
            task_preflight = getattr(task, "preflight", None)
            if task_preflight is not None:
                await task_preflight()
            outcome = await run_bench(
                task, out, concurrency=args.concurrency, timeout=args.timeout, resume=args.resume,
                retry_errors=args.retry_errors, overwrite=args.overwrite, progress=not args.no_progress,
            )
            return outcome, task.summarize(outcome.rows)
        finally:
            for obj in (task, model):
                close = getattr(obj, "aclose", None)
                if close is not None:
                    await close()

    with _hints(_RUN_HINTS):
        outcome, summary = asyncio.run(go())
        files = write_report(out, bench, outcome, summary)
    console.print(files.markdown.read_text(encoding="utf-8"), markup=False, highlight=False)
    console.print(f"results: {out / 'results.jsonl'}\nreport: {files.json}, {files.markdown}, {files.chart}",
                  highlight=False)
    return 0


# ----------------------------------------------------------------------------------------- handlers

def _bfcl(args: argparse.Namespace) -> int:
    from qwenkit.bench.bfcl.categories import MULTI_TURN, resolve_categories
    from qwenkit.bench.bfcl.data import resolve_data_dir
    from qwenkit.bench.bfcl.package import package_root
    from qwenkit.bench.bfcl.task import BfclTask

    categories = resolve_categories(args.categories.split(","))
    if args.mode == "prompt" and args.format not in (None, "pythonic"):
        raise ConfigError(f"--mode prompt uses BFCL's Python call-list format; drop --format {args.format} "
                          "(or pass --format pythonic).")
    args.format = args.format or ("pythonic" if args.mode == "prompt" else "nous")
    resolve_auto_format(args)
    model = _model(args)
    with _hints({MissingData: _BFCL_DATA_HINT}):
        data_dir = resolve_data_dir(args.data_dir)
    if any(c in MULTI_TURN or c in ("simple_java", "simple_javascript") for c in categories):
        package_root(data_dir)  # one line saying how to fetch the wheel, before any request
    with _hints({MissingData: _BFCL_DATA_HINT}):
        ids = [i.strip() for i in args.ids.split(",") if i.strip()] if args.ids else None
        if args.ids is not None and not ids:
            raise ConfigError("--ids names no record.")
        task = BfclTask(model, args.format, data_dir, categories, sampling=_sampling(args), limit=args.limit,
                        mode=args.mode, ids=ids)
        try:
            task.records()  # read the data now: a bad file is reported before any request
        except UnknownRecords as err:
            raise ConfigError(f"--ids: {err}") from None
    return _run(args, task, "bfcl", Console(), model)


def _show(args: argparse.Namespace) -> int:
    from qwenkit.bench.bfcl.show import show_record

    with _hints({ResultsFileError: "Check RUN_DIR."}):
        show_record(Path(args.run_dir), args.id, Console())
    return 0


def _tooluse(args: argparse.Namespace) -> int:
    from qwenkit.bench.tooluse.data import bfcl_samples, load_qwen_file
    from qwenkit.bench.tooluse.task import ToolUseTask
    from qwenkit.bench.tooluse.tokenizers import resolve_tokenizer

    if args.format != "react":
        raise ConfigError("the tool-use benchmark is defined on Qwen's ReAct format: use --format react.")
    console = Console()
    model = _model(args)
    if args.positive or args.negative:
        samples = []
        with _hints({MissingData: "Check --positive and --negative."}):
            if args.positive:
                samples += load_qwen_file(args.positive, "positive")[: args.limit]
            if args.negative:
                samples += load_qwen_file(args.negative, "negative")[: args.limit]
        source = "qwen"
    else:
        from qwenkit.bench.bfcl.data import resolve_data_dir

        with _hints({MissingData: _BFCL_DATA_HINT}):
            samples = bfcl_samples(resolve_data_dir(args.data_dir), limit=args.limit)
        source = "bfcl"
    with _hints({QwenkitError: "(--tokenizer)"}):
        tokenizer, warning = resolve_tokenizer(args.tokenizer)
    if warning:
        Console(stderr=True).print(f"[yellow]note:[/yellow] {warning}", highlight=False)
    task = ToolUseTask(model, samples, tokenizer, source=source, sampling=_sampling(args),
                       notes=[warning] if warning else [])
    return _run(args, task, "tooluse", console, model)


def _codeinterp(args: argparse.Namespace) -> int:
    from qwenkit.bench.codeinterp.task import build_task

    resolve_auto_format(args)
    model = _model(args)
    if args.vis_judge_model and not args.vis_judge_base_url:
        # The judge is one plain client: with replicas it asks the first (build_task reads base_url).
        args.vis_judge_base_url = model.base_url
    with _hints({MissingData: "Check --tasks, and pass --files-dir with the tasks' input files."}):
        task = build_task(args, model, _sampling(args), _out_dir(args, "codeinterp"))
    return _run(args, task, "codeinterp", Console(), model)


def _fetch(args: argparse.Namespace) -> int:
    from qwenkit.bench.bfcl.data import BFCL_PACKAGE, BFCL_VERSION, fetch

    console = Console()
    wheel = Path(args.wheel) if args.wheel else None
    if wheel is None:
        console.print(f"downloading {BFCL_PACKAGE}=={BFCL_VERSION} from PyPI (pip download --no-deps) ...")
    with _hints({MissingData: "Check --wheel.", OutputUnusable: "Choose another --dest."}):
        dest = fetch(Path(args.dest) if args.dest else None, wheel=wheel)
    console.print(f"BFCL data in {dest}", highlight=False)
    return 0
