"""Helpers shared by the ``qwenkit`` subcommands, kept apart from the command itself (no import cycles).

- `qwenkit._cli.args`: the one-line-error parser and value types that refuse nonsense (``--max-steps 0``,
  ``--temperature nan``) at parse time, naming the flag.
- `qwenkit._cli.settings`: the model-server options (``--base-url``/``--model``/``--api-key`` and their
  ``QWENKIT_*`` variables; ``--base-url`` repeatable for replicas) and their validation, naming the flag or
  variable the user set.
- `qwenkit._cli.output`: one-line errors, standard streams that cannot raise on odd text, safe JSON lines,
  and text read from standard input.
"""
