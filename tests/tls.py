"""A self-signed certificate for 127.0.0.1, made with the openssl CLI, for tests of TLS servers on 127.0.0.1."""

from __future__ import annotations

import subprocess
from pathlib import Path


def self_signed_cert(folder: Path) -> tuple[Path, Path]:
    """Write (once) ``cert.pem`` and ``key.pem`` for 127.0.0.1 in ``folder``; return their paths.

    A client trusts it by taking ``cert.pem`` as its CA bundle.
    """
    cert, key = folder / "cert.pem", folder / "key.pem"
    if not cert.exists():
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
             "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True, timeout=60,
        )
    return cert, key
