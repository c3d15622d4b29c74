"""Bridges between qwenkit and other agent frameworks.

Each bridge is its own module and imports its framework only when used, so ``import qwenkit`` never
needs them:

- `qwenkit.integrations.qwen_agent`: Qwen-Agent tools as qwenkit tools (`from_qwen_agent`), and qwenkit's
  sandboxed code interpreter as a Qwen-Agent tool (`QwenkitCodeInterpreter`). Needs the extra
  ``qwenkit[qwen-agent]``.
"""
