"""Private parts of `qwenkit.llm.openai_compat`: the wire format, reply parsing and the HTTP guards."""
