"""Japanese text in matplotlib (no missing-glyph boxes): used by the lesson plots and the harness's report
and slide plots alike, so it belongs to neither layer."""
from __future__ import annotations

from matplotlib import font_manager

# Preferred Japanese fonts, best first: Debian's fonts-noto-cjk, then IPAexGothic from the
# japanize-matplotlib wheel (always installed with requirements.txt).
JAPANESE_FONTS = ("Noto Sans CJK JP", "IPAexGothic")


def use_japanese_font() -> str:
    """Make matplotlib draw Japanese text; returns the font family chosen."""
    import matplotlib

    available = {f.name for f in font_manager.fontManager.ttflist}
    if "IPAexGothic" not in available:
        try:  # registers IPAexGothic from the wheel (and sets it as the default family)
            import japanize_matplotlib  # noqa: F401
        except ImportError:
            pass
        available = {f.name for f in font_manager.fontManager.ttflist}
    for name in JAPANESE_FONTS:
        if name in available:
            # DejaVu Sans first keeps Latin text and digits as usual; Japanese falls back to `name`.
            matplotlib.rcParams["font.family"] = ["DejaVu Sans", name]
            matplotlib.rcParams["axes.unicode_minus"] = False
            return name
    raise RuntimeError("no Japanese font found: `pip install japanize-matplotlib==1.1.3` "
                       "or install the Debian package fonts-noto-cjk")
