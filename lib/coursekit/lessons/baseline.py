"""The baseline a practitioner tries first: TF-IDF on character n-grams + a linear SVM (scikit-learn).

    model = train(train.texts, train.labels)
    result = livedoor.evaluate(test.labels, model.predict(test.texts), test.label_names)

Character n-grams need no Japanese word segmenter and are strong on news genres (0.947 on all livedoor
articles at the 510-character cap: benchmarks/results/livedoor.md), which is exactly why BERT must be
compared against it, on the same text (notebook 02 also trains it on what BERT reads after truncation).
"""
from __future__ import annotations


def train(texts, labels, ngram_range=(1, 3), C: float = 1.0, max_features: int | None = 200_000,
          seed: int = 0):
    """Fit TF-IDF (character n-grams, sublinear tf) + LinearSVC; return the scikit-learn Pipeline."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    if len(set(labels)) < 2:
        raise ValueError("the baseline needs articles of at least 2 genres to train")
    model = make_pipeline(
        TfidfVectorizer(analyzer="char", ngram_range=tuple(ngram_range), sublinear_tf=True,
                        max_features=max_features),
        LinearSVC(C=C, random_state=seed),
    )
    return model.fit(list(texts), list(labels))
