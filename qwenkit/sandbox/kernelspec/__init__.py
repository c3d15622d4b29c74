"""qwenkit's sandboxed Jupyter kernelspec, for gateway hosts (Jupyter Kernel Gateway, Enterprise Gateway).

A gateway starts kernels from kernelspecs; isolation on the gateway host is whatever its kernelspec
launches. A plain ``python3`` kernelspec runs model-written code as the gateway's own user, with its
network and files: **no sandbox**. This kernelspec (``qwenkit-sandbox``) starts each kernel through
qwenkit's bubblewrap launcher instead (see `qwenkit.sandbox.kernelspec.launcher`), so a kernel on a
gateway host gets the same isolation as a local one: no network, a private ``/workspace`` tmpfs, a
read-only system, resource limits and a CPU share.

Install it on the gateway host, with the Python environment that has qwenkit (and ipykernel)::

    python -m qwenkit.sandbox.kernelspec install                   # into sys.prefix/share/jupyter
    python -m qwenkit.sandbox.kernelspec install --prefix /opt/jk  # into /opt/jk/share/jupyter
    python -m qwenkit.sandbox.kernelspec install --user            # into ~/.local/share/jupyter

then start the gateway with it as default, e.g.
``jupyter kernelgateway --KernelGatewayApp.default_kernel_name=qwenkit-sandbox``. The spec's
``metadata.qwenkit`` entry is how `qwenkit.sandbox.gateway.gateway_report` (``qwenkit doctor
--kernels URL``) tells it from a plain one; the gateway host must have bubblewrap
(``python -m qwenkit.sandbox.doctor`` there says whether it works).
"""

from __future__ import annotations

import json
import sys
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

KERNEL_NAME = "qwenkit-sandbox"
"""The kernelspec's name on the gateway host (what `GatewayProvider` asks for by default)."""

METADATA_KEY = "qwenkit"
"""Key in a kernelspec's ``metadata`` that marks it as qwenkit's sandboxed one."""


def kernelspec(python: str | None = None) -> dict[str, Any]:
    """The ``kernel.json`` content, with ``python`` (default: this interpreter) as the launcher's Python.

    Args:
        python: Absolute path of the Python that has qwenkit installed on the gateway host.
    """
    template = resources.files("qwenkit.sandbox.kernelspec").joinpath("kernel.json").read_text(encoding="utf-8")
    spec: dict[str, Any] = json.loads(template)
    spec["argv"] = [python or sys.executable if a == "{python}" else a for a in spec["argv"]]
    return spec


def is_sandboxed_spec(spec: object) -> bool:
    """Whether a kernelspec (the ``spec`` object of a gateway's ``/api/kernelspecs`` entry) is qwenkit's.

    It reads the spec's own word (its ``metadata``): the gateway host is trusted to run what it says.
    """
    if not isinstance(spec, dict):
        return False
    metadata = spec.get("metadata")
    marker = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    return isinstance(marker, dict) and marker.get("sandbox") == "bubblewrap"


def install(prefix: str | Path | None = None, *, user: bool = False, name: str = KERNEL_NAME,
            python: str | None = None) -> Path:
    """Install the kernelspec where Jupyter (and so a gateway) finds it.

    Args:
        prefix: Install into ``PREFIX/share/jupyter/kernels`` (default: ``sys.prefix``, unless ``user``).
        user: Install into the user's Jupyter data directory instead.
        name: Kernelspec name.
        python: The launcher's Python (default: this interpreter).

    Returns:
        The installed kernelspec directory.
    """
    from jupyter_client.kernelspec import KernelSpecManager

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "kernel.json").write_text(json.dumps(kernelspec(python), indent=2) + "\n")
        target = None if user else str(prefix if prefix is not None else sys.prefix)
        where = KernelSpecManager().install_kernel_spec(tmp, kernel_name=name, user=user, prefix=target)
    return Path(where)


__all__ = ["KERNEL_NAME", "METADATA_KEY", "install", "is_sandboxed_spec", "kernelspec"]
