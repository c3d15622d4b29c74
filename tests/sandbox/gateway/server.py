"""A real ``jupyter kernelgateway`` process on 127.0.0.1, with qwenkit's kernelspec in a private prefix."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from qwenkit.sandbox.kernelspec import install
from tests.tls import self_signed_cert

TOKEN = "qwenkit-test-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler for the tests' small stand-in HTTP servers: no access log, one-call replies."""

    def reply(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(server: ThreadingHTTPServer) -> Iterator[str]:
    """Serve ``server`` in a thread; yield its ``http://127.0.0.1:PORT`` URL, shut it down after."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def require_kernel_gateway() -> None:
    """Skip without the ``jupyter-kernel-gateway`` package; fail instead when QWENKIT_REQUIRE_SANDBOX=1 (CI)."""
    try:
        import kernel_gateway  # noqa: F401
    except ImportError:
        if os.environ.get("QWENKIT_REQUIRE_SANDBOX") == "1":
            pytest.fail("jupyter-kernel-gateway is required (pip install jupyter-kernel-gateway)")
        pytest.skip("jupyter-kernel-gateway is not installed")


class GatewayServer:
    """One kernel gateway process; `stop` and `start` again keep its port (a gateway that comes back).

    Args:
        root: Private directory: the kernelspec prefix, Jupyter's data/runtime/config dirs and the log.
        port: Port on 127.0.0.1 (default: a free one).
        token: The gateway's auth token.
    """

    def __init__(self, root: Path, port: int | None = None, token: str = TOKEN, *, tls: bool = False) -> None:
        self.root = root
        self.port = port or free_port()
        self.token = token
        self.tls = tls
        self.cert = root / "cert.pem"
        self.process: subprocess.Popen[bytes] | None = None
        self.spec_dir = install(root / "prefix")
        self.log = root / "gateway.log"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        return ssl.create_default_context(cafile=str(self.cert)) if self.tls else True

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def _make_cert(self) -> list[str]:
        """A self-signed certificate for 127.0.0.1 (the test trusts it by passing ``cert`` as CA bundle)."""
        cert, key = self_signed_cert(self.root)
        return [f"--KernelGatewayApp.certfile={cert}", f"--KernelGatewayApp.keyfile={key}"]

    def start(self, timeout: float = 60.0) -> GatewayServer:
        env = {
            **os.environ, "JUPYTER_PATH": str(self.root / "prefix" / "share" / "jupyter"),
            "JUPYTER_DATA_DIR": str(self.root / "data"), "JUPYTER_RUNTIME_DIR": str(self.root / "runtime"),
            "JUPYTER_CONFIG_DIR": str(self.root / "config"),
        }
        argv = [
            sys.executable, "-m", "kernel_gateway", "--KernelGatewayApp.ip=127.0.0.1",
            f"--KernelGatewayApp.port={self.port}", f"--KernelGatewayApp.auth_token={self.token}",
            "--KernelGatewayApp.default_kernel_name=qwenkit-sandbox", "--KernelGatewayApp.port_retries=0",
            "--JupyterWebsocketPersonality.list_kernels=True",
            *(self._make_cert() if self.tls else []),
        ]
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the kernel gateway exited: {self.log.read_text()[-2000:]}")
            try:
                answer = httpx.get(f"{self.url}/api/kernelspecs", headers={"Authorization": f"token {self.token}"},
                                   timeout=2, verify=self.verify)
                if answer.status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the kernel gateway did not answer within {timeout:g} s: {self.log.read_text()[-2000:]}")

    def kernels(self, wait: float = 0.0) -> list[str]:
        """Ids of the kernels running on the gateway, waiting up to ``wait`` s for the list to empty."""
        deadline = time.monotonic() + wait
        while True:
            answer = httpx.get(f"{self.url}/api/kernels", headers={"Authorization": f"token {self.token}"}, timeout=5,
                               verify=self.verify)
            answer.raise_for_status()
            ids = [str(k["id"]) for k in answer.json()]
            if not ids or time.monotonic() >= deadline:
                return ids
            time.sleep(0.2)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
