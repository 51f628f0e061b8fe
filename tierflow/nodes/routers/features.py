"""What the learned router sees of a request: word and character n-grams, and its shape.

Two TF-IDF blocks (scikit-learn's vectorizers; each row L2-normalised) and four shape
numbers (length in characters and words, lines, share of digits) side by side. After
training, a vectorizer is just its vocabulary (terms in column order) and its IDF
weights, so it saves as data and rebuilds exactly (no pickle).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer

from tierflow.spec_model import SpecModel

SHAPE_FEATURES = ("log_chars", "log_words", "lines", "digit_share")


class FeatureSettings(SpecModel):
    """How requests become features (saved with the router)."""

    word_ngrams: tuple[int, int] = (1, 2)
    word_min_df: int = Field(default=2, ge=1)
    char_ngrams: tuple[int, int] = (2, 5)
    char_min_df: int = Field(default=3, ge=1)
    # Character n-grams of the first this many characters only: the cost of a decision
    # grows with them, and a long reading passage adds little past its start.
    char_max_chars: int | None = Field(default=1000, gt=0)
    sublinear_tf: bool = True

    def vectorizer(
        self, block: str, vocabulary: Mapping[str, int] | None = None
    ) -> TfidfVectorizer:
        if block == "word":
            return TfidfVectorizer(
                ngram_range=self.word_ngrams,
                min_df=self.word_min_df,
                sublinear_tf=self.sublinear_tf,
                vocabulary=vocabulary,
                dtype=np.float64,
            )
        return TfidfVectorizer(
            analyzer="char_wb",
            preprocessor=partial(_head, self.char_max_chars),
            ngram_range=self.char_ngrams,
            min_df=self.char_min_df,
            sublinear_tf=self.sublinear_tf,
            vocabulary=vocabulary,
            dtype=np.float64,
        )


BLOCKS = ("word", "char")


class TextFeatures:
    """Fitted featurizer: `transform(texts)` → one sparse row per text."""

    def __init__(
        self,
        settings: FeatureSettings,
        vocabularies: Mapping[str, Sequence[str]],
        idf: Mapping[str, npt.NDArray[np.float64]],
    ) -> None:
        self.settings = settings
        self.vocabularies = {block: list(vocabularies[block]) for block in BLOCKS}
        self.idf = {block: np.asarray(idf[block], dtype=np.float64) for block in BLOCKS}
        self._vectorizers: dict[str, TfidfVectorizer] = {}
        self._columns: dict[str, dict[str, int]] = {}
        self._analyzers: dict[str, Callable[[str], list[str]]] = {}
        for block in BLOCKS:
            columns = {term: i for i, term in enumerate(self.vocabularies[block])}
            vectorizer = settings.vectorizer(block, columns)
            vectorizer.idf_ = self.idf[block]  # sklearn's setter: a fitted vectorizer
            self._vectorizers[block] = vectorizer
            self._columns[block] = columns
            self._analyzers[block] = vectorizer.build_analyzer()

    @classmethod
    def fit_transform(
        cls, texts: Sequence[str], settings: FeatureSettings
    ) -> tuple[TextFeatures, sparse.csr_matrix]:
        """Fit the vectorizers on `texts`; return them and the features of `texts`."""
        vocabularies: dict[str, list[str]] = {}
        idf: dict[str, npt.NDArray[np.float64]] = {}
        blocks: list[Any] = []
        for block in BLOCKS:
            vectorizer = settings.vectorizer(block)
            try:
                blocks.append(vectorizer.fit_transform(texts))
            except ValueError:
                # Too few requests for min_df: keep every term instead.
                vectorizer = settings.model_copy(update={f"{block}_min_df": 1}).vectorizer(block)
                blocks.append(vectorizer.fit_transform(texts))
            vocabularies[block] = [str(t) for t in vectorizer.get_feature_names_out()]
            idf[block] = np.asarray(vectorizer.idf_, dtype=np.float64)
        blocks.append(sparse.csr_matrix(shape_features(texts)))
        return cls(settings, vocabularies, idf), sparse.hstack(blocks, format="csr")

    @property
    def width(self) -> int:
        return sum(len(v) for v in self.vocabularies.values()) + len(SHAPE_FEATURES)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        blocks: list[Any] = [self._vectorizers[b].transform(texts) for b in BLOCKS]
        blocks.append(sparse.csr_matrix(shape_features(texts)))
        return sparse.hstack(blocks, format="csr")

    def row(self, text: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """The features of one text as (columns, values): what `transform` computes, by
        hand, because scikit-learn's per-call checks cost milliseconds on one request."""
        columns: list[npt.NDArray[np.int64]] = []
        values: list[npt.NDArray[np.float64]] = []
        offset = 0
        for block in BLOCKS:
            index = self._columns[block]
            # Known terms as column numbers (dict lookups in C), counted by numpy.
            known = [c for c in map(index.get, self._analyzers[block](text)) if c is not None]
            if known:
                where, counts = np.unique(np.array(known, dtype=np.int64), return_counts=True)
                tf = counts.astype(np.float64)
                if self.settings.sublinear_tf:
                    tf = np.log(tf) + 1.0
                weights = tf * self.idf[block][where]
                norm = float(np.sqrt(np.dot(weights, weights)))
                if norm > 0:
                    weights = weights / norm
                columns.append(where + offset)
                values.append(weights)
            offset += len(index)
        columns.append(np.arange(offset, offset + len(SHAPE_FEATURES), dtype=np.int64))
        values.append(shape_features([text])[0])
        return np.concatenate(columns), np.concatenate(values)


def _head(limit: int | None, text: str) -> str:
    """scikit-learn's default preprocessing (lower case), of the first `limit` chars."""
    return (text if limit is None else text[:limit]).lower()


def shape_features(texts: Sequence[str]) -> npt.NDArray[np.float64]:
    """Length, words, lines and digit share, each scaled to about [0, 1] for ordinary
    requests, so that one regularisation strength suits them and the n-grams."""
    rows = []
    for text in texts:
        chars = len(text)
        rows.append(
            (
                math.log1p(chars) / 8,
                math.log1p(len(text.split())) / 6,
                text.count("\n") / 10,
                sum(c.isdigit() for c in text) / max(1, chars),
            )
        )
    return np.asarray(rows, dtype=np.float64).reshape(len(texts), len(SHAPE_FEATURES))
