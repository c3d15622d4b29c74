"""Qwen's tool-use metrics (Tool Selection, Tool Input ROUGE-L, False Positive) as Qwen's evaluation computes them."""
