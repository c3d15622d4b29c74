"""Move files in and out of a conversation's sandbox working directory, through its kernel.

The kernel's working directory is private to the sandbox (a tmpfs under bubblewrap, or a directory on a
kernel gateway), so the server reaches it the one way that works for every kernel: by running small cells
that write or read base64 chunks. Each cell defines one function, calls it and deletes it, leaving the
user's namespace as it was. Names are checked here and the resolved path is checked again in the kernel
(a symlink written by model code must not lead outside the working directory).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
from typing import Any

from qwenkit.sandbox.session import KernelSession

UPLOAD_CHUNK = 1024 * 1024
"""Bytes sent to the kernel per cell when uploading."""
CELL_TIMEOUT = 30.0
"""Seconds one transfer cell may run."""
MAX_LISTED = 500
"""Most files a listing returns."""

MARKER = "@@qwenkit-file@@"
"""Starts the one line of JSON a transfer cell prints."""

_BAD_CHARS = re.compile(r"[\x00-\x1f\x7f\\]")


class FileRefused(Exception):
    """The request names a path that is not allowed, or the kernel refused it.

    Attributes:
        status: The HTTP status to answer with.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_name(name: str, *, allow_dirs: bool) -> str:
    """``name`` as a relative path inside the working directory, or `FileRefused` (400).

    Absolute paths, ``..``, empty parts, backslashes and control characters are refused; uploads
    (``allow_dirs=False``) take one file name only.
    """
    parts = name.split("/")
    if (not name or len(name) > 1024 or _BAD_CHARS.search(name) or name.startswith("/")
            or any(p in ("", ".", "..") for p in parts) or (not allow_dirs and len(parts) > 1)
            or any(len(p.encode("utf-8", "surrogatepass")) > 255 for p in parts)):
        raise FileRefused(400, f"not an allowed file name: {name!r} (a relative name inside the sandbox's "
                               "working directory, without '..')")
    return name


# The kernel-side helpers. `_qk_target` resolves a name inside the working directory or says why not.
_PRELUDE = r'''
def _qk_cell():
    import base64, json, os
    root = os.path.realpath({workdir!r} or os.getcwd())
    def target(name):
        path = os.path.realpath(os.path.join(root, name))
        if path != root and not path.startswith(root + os.sep):
            raise PermissionError("outside the working directory")
        return path
    try:
{body}
    except FileNotFoundError:
        out = {{"error": "not_found"}}
    except PermissionError as err:
        out = {{"error": "refused", "detail": str(err)}}
    except IsADirectoryError:
        out = {{"error": "is_dir"}}
    except OSError as err:
        out = {{"error": "os", "detail": str(err)}}
    print({marker!r} + json.dumps(out))
_qk_cell()
del _qk_cell
'''


def _indent(code: str) -> str:
    return "\n".join("        " + line for line in code.strip("\n").splitlines())


async def _cell(session: KernelSession, workdir: str, body: str) -> dict[str, Any]:
    code = _PRELUDE.format(workdir=workdir, body=_indent(body), marker=MARKER)
    result = await session.execute(code, timeout=CELL_TIMEOUT)
    marker = result.stdout.rfind(MARKER)
    if marker < 0:
        why = result.error.value if result.error is not None else "no reply"
        if result.timed_out:
            why = "the kernel did not answer in time"
        raise FileRefused(503, f"the sandbox could not transfer the file: {why}")
    try:
        out = json.loads(result.stdout[marker + len(MARKER) :].strip())
    except ValueError as err:
        raise FileRefused(503, "the sandbox gave an unreadable reply") from err
    if not isinstance(out, dict):
        raise FileRefused(503, "the sandbox gave an unreadable reply")
    error = out.get("error")
    if error == "not_found":
        raise FileRefused(404, "no such file in the sandbox")
    if error == "refused":
        raise FileRefused(403, "that path leads outside the sandbox's working directory")
    if error == "is_dir":
        raise FileRefused(400, "that is a folder, not a file")
    if error:
        raise FileRefused(503, f"the sandbox could not transfer the file: {out.get('detail', error)}")
    return out


async def _workdir(session: KernelSession) -> str:
    await session.start()
    kernel = session.kernel
    return kernel.workdir if kernel is not None else ""


async def upload(session: KernelSession, name: str, data: bytes) -> dict[str, Any]:
    """Write ``data`` to ``name`` in the working directory, atomically (a temporary name, then a rename).

    Returns:
        ``{"name", "size"}``.
    """
    check_name(name, allow_dirs=False)
    workdir = await _workdir(session)
    tmp = f".{secrets.token_hex(8)}.qwenkit-upload"
    try:
        offset = 0
        while True:
            chunk = data[offset : offset + UPLOAD_CHUNK]
            mode = "wb" if offset == 0 else "ab"
            b64 = base64.b64encode(chunk).decode("ascii")
            await _cell(session, workdir, f'''
with open(target({tmp!r}), {mode!r}) as fh:
    fh.write(base64.b64decode({b64!r}))
out = {{}}''')
            offset += len(chunk)
            if offset >= len(data):
                break
        out = await _cell(session, workdir, f'''
dest = target({name!r})
if os.path.isdir(dest):
    raise IsADirectoryError(dest)
os.replace(target({tmp!r}), dest)
out = {{"size": os.path.getsize(dest)}}''')
    except BaseException:
        await _remove_quietly(session, workdir, tmp)
        raise
    return {"name": name, "size": out.get("size", len(data))}


async def _remove_quietly(session: KernelSession, workdir: str, name: str) -> None:
    try:
        await _cell(session, workdir, f'''
try:
    os.remove(target({name!r}))
except FileNotFoundError:
    pass
out = {{}}''')
    except Exception:  # the kernel is gone: so is its tmpfs, and the partial file with it
        return


async def download(session: KernelSession, name: str, max_bytes: int, chunk_chars: int) -> bytes:
    """Read ``name`` from the working directory.

    Args:
        session: The conversation's kernel session.
        name: Relative path (subfolders allowed).
        max_bytes: Larger files are refused (413).
        chunk_chars: Most characters one cell may print (the session's output cap, less a margin).
    """
    check_name(name, allow_dirs=True)
    workdir = await _workdir(session)
    info = await _cell(session, workdir, f'''
path = target({name!r})
if os.path.isdir(path):
    raise IsADirectoryError(path)
out = {{"size": os.path.getsize(path)}}''')
    size = int(info.get("size", 0))
    if size > max_bytes:
        raise FileRefused(413, f"the file has {size} bytes; the server serves at most {max_bytes}")
    step = max(1, (chunk_chars - 200) // 4 * 3)
    parts: list[bytes] = []
    got = 0
    while got < size:
        out = await _cell(session, workdir, f'''
with open(target({name!r}), "rb") as fh:
    fh.seek({got})
    out = {{"b64": base64.b64encode(fh.read({min(step, size - got)})).decode("ascii")}}''')
        piece = base64.b64decode(str(out.get("b64", "")))
        if not piece:
            break  # the file shrank meanwhile
        parts.append(piece)
        got += len(piece)
    return b"".join(parts)[:max_bytes]


async def listing(session: KernelSession) -> list[dict[str, Any]]:
    """The files in the working directory (recursively, hidden ones and upload leftovers skipped)."""
    workdir = await _workdir(session)
    out = await _cell(session, workdir, f'''
files = []
for top, dirs, names in os.walk(root):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    for n in sorted(names):
        if n.startswith("."):
            continue
        p = os.path.join(top, n)
        try:
            files.append({{"name": os.path.relpath(p, root), "size": os.path.getsize(p)}})
        except OSError:
            continue
        if len(files) >= {MAX_LISTED}:
            break
    if len(files) >= {MAX_LISTED}:
        break
out = {{"files": files}}''')
    files = out.get("files")
    return [f for f in files if isinstance(f, dict)] if isinstance(files, list) else []
