"""What the learned router sees of a request: word and character n-grams, and its shape.

Two TF-IDF blocks (scikit-learn's vectorizers; each row L2-normalised) and four shape
numbers (length in characters and words, lines, share of digits) side by side. After
training, a vectorizer is just its vocabulary (terms in column order) and its IDF
weights, so it saves as data and rebuilds exactly (no pickle).

Fitting, and featurising many requests at once (`transform`), use scikit-learn and
scipy (`tierflow[train]`). Routing one request (`row`) needs numpy only: `analyzer`
splits text into terms exactly as the fitted vectorizers do.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from pydantic import Field

from tierflow.errors import TierflowError
from tierflow.foundation.spec import SpecModel

if TYPE_CHECKING:
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer

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
        sklearn_text = _training()
        if block == "word":
            return sklearn_text.TfidfVectorizer(
                ngram_range=self.word_ngrams,
                min_df=self.word_min_df,
                sublinear_tf=self.sublinear_tf,
                vocabulary=vocabulary,
                dtype=np.float64,
            )
        return sklearn_text.TfidfVectorizer(
            analyzer="char_wb",
            preprocessor=partial(_head, self.char_max_chars),
            ngram_range=self.char_ngrams,
            min_df=self.char_min_df,
            sublinear_tf=self.sublinear_tf,
            vocabulary=vocabulary,
            dtype=np.float64,
        )

    def analyzer(self, block: str) -> Callable[[str], list[str]]:
        """The terms of one text in `block`, as `vectorizer(block).build_analyzer()`
        gives them (same order, same duplicates), without scikit-learn."""
        if block == "word":
            return partial(_word_terms, self.word_ngrams)
        return partial(_char_terms, self.char_ngrams, self.char_max_chars)


BLOCKS = ("word", "char")
# scikit-learn's defaults: its token pattern, and the runs of white space char_wb folds.
_TOKEN = re.compile(r"(?u)\b\w\w+\b")
_WHITE_SPACES = re.compile(r"\s\s+")


def _word_terms(ngrams: tuple[int, int], text: str) -> list[str]:
    """Word n-grams of lower-cased `text` (sklearn's `analyzer="word"`)."""
    tokens = _TOKEN.findall(text.lower())
    low, high = ngrams
    terms: list[str] = tokens[:] if low == 1 else []
    for n in range(max(low, 2), min(high, len(tokens)) + 1):
        terms += [" ".join(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return terms


def _char_terms(ngrams: tuple[int, int], limit: int | None, text: str) -> list[str]:
    """Character n-grams inside words, each word padded with a space (sklearn's
    `analyzer="char_wb"`), of the lower-cased first `limit` characters."""
    low, high = ngrams
    terms: list[str] = []
    for word in _WHITE_SPACES.sub(" ", _head(limit, text)).split():
        padded = f" {word} "
        for n in range(low, high + 1):
            terms += [padded[i : i + n] for i in range(max(1, len(padded) - n + 1))]
            if len(padded) <= n:  # a word shorter than n counts once
                break
    return terms


def _training() -> Any:
    """scikit-learn's text module; `tierflow[train]` installs it."""
    try:
        from sklearn.feature_extraction import text
    except ImportError as error:
        raise TierflowError(
            f"training a learned router, or featurising many requests at once, needs "
            f"tierflow[train] ({error.name} is missing); routing with a trained one does not"
        ) from error
    return text


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
        self._vectorizers: dict[str, TfidfVectorizer] = {}  # built by `transform`
        self._columns = {
            block: {term: i for i, term in enumerate(self.vocabularies[block])} for block in BLOCKS
        }
        self._analyzers = {block: settings.analyzer(block) for block in BLOCKS}
        for block in BLOCKS:  # what scikit-learn checks when it is given a vocabulary
            terms = len(self.vocabularies[block])
            if len(self._columns[block]) != terms:
                raise ValueError(f"the {block} vocabulary repeats a term")
            if self.idf[block].shape != (terms,):
                raise ValueError(f"{self.idf[block].shape} {block} IDF weights for {terms} terms")

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
        from scipy import sparse  # after scikit-learn, which needs it: one clear error

        blocks.append(sparse.csr_matrix(shape_features(texts)))
        return cls(settings, vocabularies, idf), sparse.hstack(blocks, format="csr")

    @property
    def width(self) -> int:
        return sum(len(v) for v in self.vocabularies.values()) + len(SHAPE_FEATURES)

    def transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """The features of many texts, one sparse row each (scikit-learn, scipy)."""
        blocks: list[Any] = [self._vectorizer(b).transform(texts) for b in BLOCKS]
        from scipy import sparse  # after scikit-learn, which needs it: one clear error

        blocks.append(sparse.csr_matrix(shape_features(texts)))
        return sparse.hstack(blocks, format="csr")

    def _vectorizer(self, block: str) -> TfidfVectorizer:
        if block not in self._vectorizers:
            vectorizer = self.settings.vectorizer(block, self._columns[block])
            vectorizer.idf_ = self.idf[block]  # sklearn's setter: a fitted vectorizer
            self._vectorizers[block] = vectorizer
        return self._vectorizers[block]

    def row(self, text: str) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
        """The features of one text as (columns, values): what `transform` computes, by
        hand, with numpy only — and fast: scikit-learn's per-call checks cost
        milliseconds on one request."""
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
