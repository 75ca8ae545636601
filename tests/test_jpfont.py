import warnings

import matplotlib

matplotlib.use("Agg")


def test_japanese_labels_render_without_missing_glyphs(tmp_path):
    import matplotlib.pyplot as plt

    from coursekit.jpfont import use_japanese_font

    family = use_japanese_font()
    assert family in ("Noto Sans CJK JP", "IPAexGothic")
    fig, ax = plt.subplots()
    ax.set_title("スポーツ・家電・映画: ジャンル別の記事数")
    ax.bar(["独女通信", "ITライフハック"], [870, 870])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph ... missing from font" would fail here
        fig.savefig(tmp_path / "ja.png")
    plt.close(fig)
    assert (tmp_path / "ja.png").stat().st_size > 1000
