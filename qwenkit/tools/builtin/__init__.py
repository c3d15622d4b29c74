"""Built-in tools. Import each from its module (``qwenkit.tools.builtin.code_interpreter``, ...);
nothing heavy is imported here so that the CLI starts fast."""
