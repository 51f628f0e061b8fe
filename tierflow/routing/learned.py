"""The learned router: a linear model over request features predicts how much the
strong tier's answer is better than the weak one's, and a threshold turns that into
a tier.

The target is the strong tier's expected accuracy gain on the request,
E[strong_correct - weak_correct]. Ranking by it is what maximises quality at any
share of strong calls (the PGR curve); "strong wins" (strong right, weak wrong) would
ignore the requests where the strong tier is wrong and the weak one right (5 % of
MMLU, 7 % of GSM8K). A ridge regression estimates it directly (docs/routing.md has the
comparison).

A trained router saves as one JSON document: settings, the vectorizers' vocabularies,
and numpy arrays (IDF weights, coefficients) as base64 bytes. Loading executes no code.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import Field, computed_field, model_validator

from tierflow.errors import TierflowError
from tierflow.foundation.spec import SpecModel
from tierflow.routing import arrays
from tierflow.routing.decision import EffortBand, TierCost, complete, effort_for
from tierflow.routing.features import BLOCKS, FeatureSettings, TextFeatures
from tierflow.routing.router import RouteDecision

FORMAT = "tierflow.learned_router"
VERSION = 1
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LinearScorer:
    """Features → predicted gain of the strong tier (higher: rather the strong tier)."""

    features: TextFeatures
    coef: FloatArray
    intercept: float
    # Quantiles (0, 1 %, …, 100 %) of out-of-fold scores on the training data: where
    # a score stands among real requests, for the decision's confidence.
    quantiles: FloatArray
    trained_on: int

    def scores(self, texts: Sequence[str]) -> FloatArray:
        matrix = self.features.transform(texts)
        return np.asarray(matrix @ self.coef, dtype=np.float64) + self.intercept

    def score(self, text: str) -> float:
        """The score of one request (the route node's path: no batch overhead)."""
        columns, values = self.features.row(text)
        return float(np.dot(values, self.coef[columns])) + self.intercept

    def confidence(self, score: float, threshold: float) -> float:
        """0.5 at the threshold, rising to 1 as the score gets as far from it as the
        farthest training request on its side."""
        levels = np.linspace(0.0, 1.0, len(self.quantiles))
        rank = float(np.interp(score, self.quantiles, levels))
        cut = float(np.interp(threshold, self.quantiles, levels))
        room = 1.0 - cut if score >= threshold else cut
        if room <= 0.0:
            return 1.0
        return 0.5 + 0.5 * min(1.0, abs(rank - cut) / room)

    def document(self) -> dict[str, Any]:
        return {
            "features": {
                "settings": self.features.settings.model_dump(mode="json"),
                "vocabulary": self.features.vocabularies,
                "idf": {b: arrays.encode(self.features.idf[b]) for b in BLOCKS},
            },
            "model": {
                "target": "strong_correct - weak_correct",
                "coef": arrays.encode(self.coef),
                "intercept": self.intercept,
                "quantiles": arrays.encode(self.quantiles),
                "trained_on": self.trained_on,
            },
        }

    @property
    def sha256(self) -> str:
        canonical = json.dumps(self.document(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @classmethod
    def from_document(cls, document: Mapping[str, Any], where: str) -> LinearScorer:
        try:
            features = document["features"]
            model = document["model"]
            settings = FeatureSettings(**features["settings"])
            vocabularies = {b: [str(t) for t in features["vocabulary"][b]] for b in BLOCKS}
            idf = {b: arrays.decode(features["idf"][b], f"{where}: idf.{b}") for b in BLOCKS}
            text_features = TextFeatures(settings, vocabularies, idf)
            coef = arrays.decode(model["coef"], f"{where}: coef")
            scorer = cls(
                features=text_features,
                coef=coef.astype(np.float64),
                intercept=float(model["intercept"]),
                quantiles=arrays.decode(model["quantiles"], f"{where}: quantiles"),
                trained_on=int(model["trained_on"]),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise TierflowError(f"{where}: not a learned router ({error!r})") from None
        if coef.shape != (text_features.width,):
            raise TierflowError(
                f"{where}: {coef.shape[0]} coefficients for {text_features.width} features"
            )
        return scorer


class LearnedRouter(SpecModel):
    """Sends a request to `strong` when its predicted gain reaches `threshold`.

    Build one with `train_learned_router` or `LearnedRouter.load(path)`. On the strong
    tier, `efforts` picks a reasoning effort by score; `costs` (per tier) adds the
    decision's expected cost.
    """

    scorer: LinearScorer = Field(exclude=True, repr=False)
    threshold: float
    weak: str = "fast"
    strong: str = "reasoning"
    name: str = "learned"
    efforts: tuple[EffortBand, ...] = ()
    costs: Mapping[str, TierCost] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _two_tiers(self) -> LearnedRouter:
        if self.weak == self.strong:
            raise ValueError(f"weak and strong must be different tiers (both {self.weak!r})")
        return self

    @computed_field  # type: ignore[prop-decorator]
    @property
    def model_sha256(self) -> str:
        """Identifies the trained model in `agent.to_json()`, so a retrained router diffs."""
        return self.scorer.sha256

    def tiers(self) -> set[str]:
        return {self.weak, self.strong}

    def score(self, request: str) -> float:
        return self.scorer.score(request)

    def route(self, request: str, state: Mapping[str, Any]) -> RouteDecision:
        score = self.score(request)
        strong = score >= self.threshold
        decision = RouteDecision(
            tier=self.strong if strong else self.weak,
            router=self.name,
            reason=(
                f"predicted gain of {self.strong} {score:+.3f} "
                f"{'>=' if strong else '<'} threshold {self.threshold:+.3f}"
            ),
            confidence=self.scorer.confidence(score, self.threshold),
        )
        effort = effort_for(self.efforts, score) if strong else None
        return complete(decision, request, state, self.costs, effort)

    def save(self, path: str | Path) -> None:
        document = {
            "format": FORMAT,
            "version": VERSION,
            "router": self.model_dump(mode="json", exclude={"model_sha256"}),
            **self.scorer.document(),
        }
        Path(path).write_text(json.dumps(document, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, **overrides: Any) -> LearnedRouter:
        """A saved router; `overrides` replace saved settings (e.g. `threshold=`)."""
        where = str(path)
        try:
            document = json.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise TierflowError(f"{where}: no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise TierflowError(f"{where}: not a JSON router file ({error})") from None
        if not isinstance(document, dict) or document.get("format") != FORMAT:
            raise TierflowError(f"{where}: not a tierflow learned router (no format {FORMAT!r})")
        if document.get("version") != VERSION:
            raise TierflowError(
                f"{where}: router format version {document.get('version')!r}; this "
                f"tierflow reads version {VERSION}"
            )
        scorer = LinearScorer.from_document(document, where)
        settings = dict(document.get("router") or {})
        settings.update(overrides)
        return cls(scorer=scorer, **settings)
