"""Generated corpora for the tests: the layouts of the real releases, with text a model can learn.

The real corpora are downloaded by the users' runs (the development machines have no network);
these stand in for them in tests. ../shared/data holds real copies for the optional tests.
"""
from __future__ import annotations

import random
from pathlib import Path

from coursekit.lessons.livedoor import CATEGORIES

_GENRE_WORDS = {
    "dokujo-tsushin": "独身 女性 結婚 恋愛 婚活 彼氏 アラサー 職場 女子会 合コン",
    "it-life-hack": "パソコン ソフト クラウド セキュリティ アプリ ネット 仕事術 データ 無料 便利",
    "kaden-channel": "家電 テレビ 掃除機 冷蔵庫 エアコン 新製品 メーカー 省エネ 電池 カメラ",
    "livedoor-homme": "男性 ビジネス 転職 年収 スーツ 時計 キャリア 上司 出世 趣味",
    "movie-enter": "映画 監督 公開 主演 俳優 試写会 興行 作品 シリーズ 上映",
    "peachy": "美容 ファッション コスメ スイーツ ダイエット 占い レシピ 女子 カフェ 恋",
    "smax": "スマートフォン アンドロイド 端末 ドコモ 発売 機種 通信 アップデート 画面 SIM",
    "sports-watch": "野球 サッカー 選手 監督 試合 優勝 代表 ゴール 投手 五輪",
    "topic-news": "事件 政治 ネット 話題 批判 報道 騒動 発言 芸能 社会",
}
_COMMON_WORDS = "今回 記事 話題 人気 注目 日本 最新 情報 紹介 多く 問題 場合 可能 時間 今年".split()


def write_sample_corpus(root: str | Path, per_category: int = 12, seed: int = 0,
                        categories=CATEGORIES, body_sentences: int = 6) -> Path:
    """Write a generated corpus in the release's exact layout (root/text/<category>/<category>-<id>.txt,
    LICENSE.txt per category, README.txt and CHANGES.txt at the top); return root/text.
    Each genre draws from its own words plus shared ones, so a classifier can learn it."""
    rng = random.Random(seed)
    text_dir = Path(root) / "text"
    text_dir.mkdir(parents=True, exist_ok=True)
    (text_dir / "README.txt").write_text("generated livedoor-format corpus for tests\n", encoding="utf-8")
    (text_dir / "CHANGES.txt").write_text("none\n", encoding="utf-8")
    for category in categories:
        folder = text_dir / category
        folder.mkdir(exist_ok=True)
        (folder / "LICENSE.txt").write_text("CC BY-ND 2.1 JP (generated sample)\n", encoding="utf-8")
        words = _GENRE_WORDS.get(category, category).split()
        for k in range(per_category):
            def sentence():
                picked = rng.sample(words, 3) + rng.sample(_COMMON_WORDS, 2)
                rng.shuffle(picked)
                return "の".join(picked) + "について。"
            title = f"【{rng.choice(words)}】{sentence()}"
            body = "\n".join(sentence() for _ in range(body_sentences))
            article = (f"http://news.livedoor.com/article/detail/{1000000 + k}/\n"
                       f"2012-0{1 + k % 9}-1{k % 10}T12:00:00+0900\n{title}\n{body}\n")
            (folder / f"{category}-{1000000 + k}.txt").write_text(article, encoding="utf-8")
    return text_dir


_PEOPLE = "太郎 花子 先生 社長 学生 母 父 友達 店長 選手".split()
_PLACES = "東京 大阪 京都 学校 会社 公園 駅 病院 図書館 海".split()
_THINGS = "本 パン 手紙 写真 映画 音楽 料理 野菜 新聞 電車".split()
_VERBS = {"本": "読みました", "パン": "食べました", "手紙": "書きました", "写真": "撮りました",
          "映画": "見ました", "音楽": "聞きました", "料理": "作りました", "野菜": "買いました",
          "新聞": "読みました", "電車": "待ちました"}
_WEATHER = "晴れ 雨 曇り 雪".split()


def sample_documents(n_documents: int = 200, sentences: int = 8, seed: int = 0,
                     last: str = "明日も{}でしょうか？") -> list[str]:
    """Generated Japanese documents with learnable regularities (each object has its own verb,
    each document its own weather, in its first and `last` sentence): a corpus for tests and for
    trying the notebook without data."""
    rng = random.Random(seed)
    docs = []
    for _ in range(n_documents):
        weather = rng.choice(_WEATHER)
        lines = [f"今日の天気は{weather}です。"]
        for _ in range(sentences - 1):
            thing = rng.choice(_THINGS)
            lines.append(f"{rng.choice(_PEOPLE)}は{rng.choice(_PLACES)}で{thing}を{_VERBS[thing]}。")
        lines.append(last.format(weather))
        docs.append("".join(lines))
    return docs


def write_sample_folder(folder: str | Path, n_documents: int = 200, seed: int = 0, **kwargs) -> Path:
    """`sample_documents` (with `kwargs`) written as a folder of .txt files (one per document)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, doc in enumerate(sample_documents(n_documents, seed=seed, **kwargs)):
        (folder / f"doc-{k:05d}.txt").write_text(doc + "\n", encoding="utf-8")
    return folder
