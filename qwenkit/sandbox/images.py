"""Images from a kernel: check that PNG bytes are a real, reasonably sized image; keep the outputs folder
within a size budget.

A kernel is untrusted: an ``image/png`` display can carry any bytes (a PNG signature followed by
hundreds of megabytes of junk, a header claiming a billion pixels). Only bytes Pillow reads as a
whole, valid PNG within the pixel limit are written to disk, and the folder they go to is kept under
its budget by deleting its oldest files first.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("qwenkit.sandbox")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_problem(raw: bytes, max_pixels: int) -> str | None:
    """Why ``raw`` is not an acceptable PNG image, or ``None`` when it is one.

    Reads the header (format, width, height) and checks every chunk's CRC with Pillow's ``verify``,
    which does not decode the pixels, so the cost is linear in ``len(raw)`` whatever the header claims.

    Args:
        raw: The bytes of the display.
        max_pixels: Most pixels (width x height) accepted.
    """
    if not raw.startswith(PNG_SIGNATURE):
        return "not PNG data"
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow warns about big images; the check below decides
            with Image.open(io.BytesIO(raw), formats=["PNG"]) as image:
                width, height = image.size
                if width <= 0 or height <= 0 or width * height > max_pixels:
                    return f"{width}x{height} pixels is over the limit of {max_pixels}"
                image.verify()
    except Exception as err:  # Pillow raises many types for broken data; any of them means "not an image"
        return f"unreadable PNG ({type(err).__name__})"
    return None


@dataclass(frozen=True)
class OutputsBudget:
    """A size budget for a folder of saved outputs, shared by all conversations writing into it.

    Attributes:
        root: The folder (``./qwenkit-outputs`` for the CLI); each conversation has a folder under it.
        max_bytes: Most bytes the files under ``root`` may take together.
    """

    root: Path
    max_bytes: int

    def _files(self) -> list[tuple[float, int, Path]]:
        found: list[tuple[float, int, Path]] = []
        for folder, _dirs, names in os.walk(self.root):
            for name in names:
                path = Path(folder) / name
                with contextlib.suppress(OSError):
                    st = path.lstat()
                    found.append((st.st_mtime, st.st_size, path))
        return found

    def make_room(self, nbytes: int) -> bool:
        """Delete the oldest files under ``root`` until ``nbytes`` more fit in the budget.

        Returns:
            False when ``nbytes`` alone is over the budget (nothing is deleted then).
        """
        if nbytes > self.max_bytes:
            return False
        files = self._files()
        total = sum(size for _, size, _ in files)
        if total + nbytes <= self.max_bytes:
            return True
        removed = 0
        for _mtime, size, path in sorted(files, key=lambda f: f[0]):
            if total + nbytes <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
                removed += 1
        if removed:
            log.info("outputs folder %s over its %d-byte budget: removed %d oldest file(s)",
                     self.root, self.max_bytes, removed)
        return total + nbytes <= self.max_bytes
