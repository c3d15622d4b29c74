"""Reproducible tool-calling benchmarks: BFCL, Qwen's tool-use metrics and a code-interpreter benchmark."""
