"""The embedded model the tests run on: the 0.5B, about twice as fast on a CPU as the default 1.5B.

``scripts/test.sh`` pulls it beside the default; tests that check the README's no-flag command use the
default model itself.
"""

TEST_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"
