"""The baseline a practitioner tries first: TF-IDF on character n-grams + a linear SVM (scikit-learn).

    model = train(train.texts, train.labels)
    result = livedoor.evaluate(test.labels, model.predict(test.texts), test.label_names)

Character n-grams need no Japanese word segmenter and are strong on news genres (0.947 on all livedoor
articles at the 510-character cap: benchmarks/results/livedoor.md), which is exactly why BERT must be
compared against it, on the same text (notebook 02 also trains it on what BERT reads after truncation).
"""
from __future__ import annotations


def train(texts, labels, ngram_range=(1, 3), C: float = 1.0, n_features: int = 2 ** 18, seed: int = 0):
    """Fit TF-IDF (character n-grams, sublinear tf) + LinearSVC; return the scikit-learn Pipeline.

    The n-grams are hashed into `n_features` columns (HashingVectorizer + TfidfTransformer) instead of
    counted into a vocabulary (TfidfVectorizer): the same TF-IDF model without a Python dictionary of
    every n-gram: a few times faster on whole livedoor articles, and on notebook 02's tiny subset the
    same test accuracy as the counted vocabulary; collisions among 2^18 columns hardly matter here."""
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfTransformer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    if len(set(labels)) < 2:
        raise ValueError("the baseline needs articles of at least 2 genres to train")
    model = make_pipeline(
        HashingVectorizer(analyzer="char", ngram_range=tuple(ngram_range), n_features=n_features,
                          alternate_sign=False, norm=None),  # raw n-gram counts per column
        TfidfTransformer(sublinear_tf=True),                  # 1 + log(count), idf, L2 norm
        LinearSVC(C=C, random_state=seed),
    )
    return model.fit(list(texts), list(labels))
