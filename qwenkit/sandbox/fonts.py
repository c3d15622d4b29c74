"""Matplotlib set-up shared by every kernel: a prebuilt font cache and an rc file with a CJK fallback.

Building matplotlib's font list takes seconds; doing it in every fresh sandbox would slow every
start, so it is built once on the host (same fonts: the sandbox sees the host's ``/usr`` read-only)
and bound read-only into each kernel's ``MPLCONFIGDIR``.

The rc file lists ``DejaVu Sans`` first and then the CJK fonts that are installed, as a list of
*families*: matplotlib (>= 3.6) falls back glyph by glyph along that list, so Latin text keeps its
usual look and Chinese text renders without "missing glyph" warnings.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

CJK_FONTS = (
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Droid Sans Fallback",
    "AR PL UMing CN",
)
"""CJK families looked for, best first (Debian's ``fonts-wqy-microhei`` provides the first)."""

_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts")

_BUILD = r"""
import json, sys
from pathlib import Path
import matplotlib
from matplotlib import font_manager as fm
out = Path(sys.argv[1])
names = {f.name for f in fm.fontManager.ttflist}
cjk = [n for n in json.loads(sys.argv[2]) if n in names]
families = ["DejaVu Sans", *cjk]
(out / "matplotlibrc").write_text(
    "font.family: " + ", ".join(families) + "\n"
    "figure.dpi: 100\n"
    "savefig.dpi: 100\n"
)
(out / "info.json").write_text(json.dumps({
    "fontlist": "fontlist-v%s.json" % fm.FontManager.__version__,
    "cjk": cjk,
}))
"""


def _cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "qwenkit"


def _fingerprint() -> str:
    """Hash of the matplotlib version and the installed font files (rebuild when either changes)."""
    import matplotlib

    h = hashlib.sha256(f"{matplotlib.__version__}|{sys.version_info[:2]}".encode())
    for root in _FONT_DIRS:
        for dirpath, _, files in sorted(os.walk(root)):
            for name in sorted(files):
                h.update(f"{dirpath}/{name}".encode())
    return h.hexdigest()[:16]


def matplotlib_seed(python: str | None = None) -> Path:
    """Return a directory holding ``matplotlibrc`` and matplotlib's font cache, building it if needed.

    Args:
        python: Interpreter the kernels run (default: this one).

    Returns:
        The directory; readable by anyone, written only by this user.
    """
    seed = _cache_root() / f"mpl-{_fingerprint()}"
    if (seed / "info.json").is_file():
        return seed
    tmp = seed.with_name(seed.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    import json

    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "MPLCONFIGDIR": str(tmp), "HOME": str(tmp)}
    subprocess.run(
        [python or sys.executable, "-I", "-c", _BUILD, str(tmp), json.dumps(CJK_FONTS)],
        env=env, check=True, capture_output=True, timeout=300,
    )
    for p in (tmp, *tmp.iterdir()):
        p.chmod(0o755 if p.is_dir() else 0o644)
    try:
        tmp.rename(seed)
    except OSError:  # another process won the race; its copy is as good as ours
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return seed


def seed_files(seed: Path) -> dict[str, Path]:
    """Map file names a kernel's ``MPLCONFIGDIR`` needs to their path in ``seed``."""
    import json

    info = json.loads((seed / "info.json").read_text())
    files = {"matplotlibrc": seed / "matplotlibrc"}
    fontlist = seed / info["fontlist"]
    if fontlist.is_file():
        files[info["fontlist"]] = fontlist
    return files


def cjk_fonts(seed: Path) -> list[str]:
    """The CJK families found when ``seed`` was built (empty: Chinese labels will show boxes)."""
    import json

    return list(json.loads((seed / "info.json").read_text())["cjk"])
