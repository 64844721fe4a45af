"""The three ensemble members: ``pytorch_transformer``, ``sklearn_ensemble``, ``enhanced_predictor``.

All follow :mod:`ml.base`: pydantic ``Params`` validated in ``__init__``; ``fit(draws, *, progress=None)``
returns ``self`` (the callback may raise :class:`~ml.base.TrainingCancelled`); ``predict(history)`` returns
45 per-number scores for the draw after ``history``; ``to_bytes()`` / ``from_bytes()``.

``predict`` output: index 0 = number 1; each score in (0, 1) and the 45 sum to 6, i.e. a probability-like
"expected appearances in the next draw". Under uniform draws the truth is 6/45 ≈ 0.1333 for every number.

``fit`` holds out the last ``holdout_fraction`` of the draws (chronologically), trains on the rest,
scores every held-out draw from the draws before it, stores those scores and the drawn numbers
(``holdout_rounds``, ``holdout_scores``, ``holdout_targets``: what stacking learns from) and these
``metrics`` beside the random baseline, then (``refit=True``) trains again on all draws:

* ``holdout_log_loss`` (mean binary cross-entropy over 45 numbers × held-out draws) vs
  ``holdout_log_loss_random_baseline`` (the constant 6/45 predictor: 0.39268);
* ``holdout_mean_hits_top6`` (matches of the six highest-scored numbers) with a 95 % interval vs
  ``holdout_mean_hits_top6_random_baseline`` = 0.8.

When ``params.machine`` is set the model learns from, and predicts from, that machine's draws only
(callers may pass all draws). Draws are uniform random; these models are expected to match the baseline.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import pickle
import struct
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Final, Self

import numpy as np
import sklearn
import torch
from scipy import stats
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from threadpoolctl import threadpool_limits
from torch import nn

from ml.base import ProgressCallback, Throttle
from ml.lotto.confidence import BASE_RATE, ConfidenceEvidence, evidence_from_holdout
from ml.lotto.draws import (
    HIGH_MIN,
    NUMBER_MAX,
    NUMBERS_PER_DRAW,
    Draw,
    draws_for_machine,
    multi_hot,
)
from ml.lotto.params import (
    EnhancedPredictorParams,
    LottoModelParams,
    SklearnEnsembleParams,
    TransformerParams,
)
from ml.lotto.strategies import number_model

RANDOM_LOG_LOSS: Final = -(BASE_RATE * math.log(BASE_RATE) + (1 - BASE_RATE) * math.log(1 - BASE_RATE))
RANDOM_TOP6_HITS: Final = NUMBERS_PER_DRAW * NUMBERS_PER_DRAW / NUMBER_MAX
_MAGIC: Final = b"MBLOTTO\x01"
_EPS: Final = 1e-6

Progress = Callable[[float, Mapping[str, Any]], None]


# ---------------------------------------------------------------------------------------------------------------
# helpers


def normalise_scores(scores: np.ndarray) -> np.ndarray:
    """Rescale positive scores so the 45 sum to 6, clipped into (0, 1)."""
    values = np.clip(np.asarray(scores, dtype=np.float64), _EPS, None)
    values = values / values.sum() * NUMBERS_PER_DRAW
    return np.clip(values, _EPS, 1 - _EPS)


def top_k(scores: np.ndarray, k: int = NUMBERS_PER_DRAW) -> list[int]:
    """The k highest-scored numbers (1-based; ties: the smaller number first), sorted."""
    order = np.lexsort((np.arange(NUMBER_MAX), -np.asarray(scores)))
    return sorted(int(i) + 1 for i in order[:k])


def log_loss(scores: np.ndarray, targets: np.ndarray) -> float:
    p = np.clip(scores, _EPS, 1 - _EPS)
    return float(-np.mean(targets * np.log(p) + (1 - targets) * np.log(1 - p)))


def _segment(progress: Progress, start: float, end: float) -> Progress:
    def report(pct: float, figures: Mapping[str, Any]) -> None:
        progress(start + (end - start) * pct / 100.0, figures)

    return report


@contextlib.contextmanager
def torch_single_thread() -> Iterator[None]:
    """``torch.set_num_threads(1)`` for the block (restored after): small models, no oversubscription."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _pack(kind: str, header: dict[str, Any], blobs: Mapping[str, bytes]) -> bytes:
    offsets: dict[str, list[int]] = {}
    position = 0
    for name, blob in blobs.items():
        offsets[name] = [position, len(blob)]
        position += len(blob)
    meta = json.dumps({"kind": kind, **header, "blobs": offsets}, sort_keys=True).encode()
    return _MAGIC + struct.pack(">I", len(meta)) + meta + b"".join(blobs.values())


def _unpack(data: bytes) -> tuple[dict[str, Any], dict[str, bytes]]:
    if not data.startswith(_MAGIC):
        raise ValueError("not a modelbus lotto model artifact")
    (length,) = struct.unpack(">I", data[len(_MAGIC) : len(_MAGIC) + 4])
    start = len(_MAGIC) + 4
    header = json.loads(data[start : start + length])
    body = data[start + length :]
    blobs = {name: body[offset : offset + size] for name, (offset, size) in header.pop("blobs").items()}
    return header, blobs


def _array_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def _array_from(blob: bytes) -> np.ndarray:
    return np.load(io.BytesIO(blob), allow_pickle=False)


# ---------------------------------------------------------------------------------------------------------------
# common base


class LottoModel:
    """Shared fit / evaluate / serialise logic; subclasses implement ``_train`` and ``_predict_at``."""

    name: ClassVar[str]
    params_type: ClassVar[type[LottoModelParams]] = LottoModelParams

    def __init__(self, params: LottoModelParams | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        if isinstance(params, LottoModelParams):
            if kwargs:
                params = self.params_type.model_validate({**params.model_dump(), **kwargs})
            self.params: LottoModelParams = self.params_type.model_validate(params.model_dump())
        else:
            self.params = self.params_type.model_validate({**dict(params or {}), **kwargs})
        self.metrics: dict[str, float] = {}
        self.holdout_rounds: list[int] = []
        self.holdout_scores: np.ndarray = np.zeros((0, NUMBER_MAX))
        self.holdout_targets: np.ndarray = np.zeros((0, NUMBER_MAX), dtype=np.int8)
        self.fitted = False

    # -- subclass hooks ------------------------------------------------------------------------------------------
    def _train(self, draws: Sequence[Draw], progress: Progress) -> None:
        raise NotImplementedError

    def _predict_at(self, draws: Sequence[Draw], indices: Sequence[int]) -> np.ndarray:
        """Raw scores (len(indices), 45) for the draw at each index, from ``draws[:index]``."""
        raise NotImplementedError

    def _state_blobs(self) -> dict[str, bytes]:
        return {}

    def _load_state(self, blobs: Mapping[str, bytes]) -> None:
        return None

    # -- public --------------------------------------------------------------------------------------------------
    def _history(self, draws: Sequence[Draw]) -> list[Draw]:
        return draws_for_machine(draws, self.params.machine)

    def fit(self, draws: Sequence[Draw], *, progress: ProgressCallback | None = None) -> Self:
        started = time.perf_counter()
        history = self._history(draws)
        if len(history) < self.params.min_draws:
            raise ValueError(f"{self.name} needs at least {self.params.min_draws} draws, got {len(history)}")
        throttle = Throttle(progress)
        n_holdout = max(1, round(len(history) * self.params.holdout_fraction))
        split = len(history) - n_holdout
        train_end = 45.0 if self.params.refit else 90.0
        self._train(history[:split], _segment(throttle, 0.0, train_end))

        indices = list(range(split, len(history)))
        scores = np.vstack([normalise_scores(row) for row in self._predict_at(history, indices)])
        targets = multi_hot([history[i] for i in indices])
        hits = np.array(
            [len(set(top_k(row)) & set(history[i].numbers)) for row, i in zip(scores, indices, strict=True)]
        )
        self.holdout_rounds = [history[i].round for i in indices]
        self.holdout_scores = scores
        self.holdout_targets = targets.astype(np.int8)
        half = float(NUMBERS_PER_DRAW)
        if len(hits) > 1:
            half = float(stats.t.ppf(0.975, len(hits) - 1)) * float(hits.std(ddof=1)) / math.sqrt(len(hits))
        self.metrics = {
            "train_draws": float(split),
            "holdout_draws": float(n_holdout),
            "holdout_log_loss": round(log_loss(scores, targets), 6),
            "holdout_log_loss_random_baseline": round(RANDOM_LOG_LOSS, 6),
            "holdout_mean_hits_top6": round(float(hits.mean()), 4),
            "holdout_mean_hits_top6_ci95_low": round(float(hits.mean()) - half, 4),
            "holdout_mean_hits_top6_ci95_high": round(float(hits.mean()) + half, 4),
            "holdout_mean_hits_top6_random_baseline": RANDOM_TOP6_HITS,
        }
        throttle(train_end + 5.0, {"phase": "evaluated", **self.metrics})
        if self.params.refit:
            self._train(history, _segment(throttle, 55.0, 100.0))
            self.metrics["train_draws"] = float(len(history))
        self.metrics["fit_seconds"] = round(time.perf_counter() - started, 3)
        self.fitted = True
        throttle(100.0, {"phase": "done", **self.metrics})
        return self

    def evidence(self) -> ConfidenceEvidence:
        """The held-out record (see :mod:`ml.lotto.confidence`) that weights this member's ``confidence_score``."""
        rounds = f"rounds {self.holdout_rounds[0]}–{self.holdout_rounds[-1]}" if self.holdout_rounds else "none"
        return evidence_from_holdout(
            self.holdout_scores, self.holdout_targets, f"{self.name} held-out draws ({rounds}), before the refit"
        )

    def predict(self, history: Sequence[Draw]) -> np.ndarray:
        """45 probability-like scores (sum 6) for the draw after ``history`` (see module docstring)."""
        if not self.fitted:
            raise RuntimeError(f"{self.name} is not fitted")
        draws = self._history(history)
        return normalise_scores(self._predict_at(draws, [len(draws)])[0])

    def to_bytes(self) -> bytes:
        header = {
            "params": self.params.model_dump(),
            "metrics": self.metrics,
            "holdout_rounds": self.holdout_rounds,
            "fitted": self.fitted,
            "versions": {"numpy": np.__version__, "torch": torch.__version__, "sklearn": sklearn.__version__},
        }
        blobs = {
            "holdout_scores": _array_bytes(self.holdout_scores),
            "holdout_targets": _array_bytes(self.holdout_targets),
            **self._state_blobs(),
        }
        return _pack(self.name, header, blobs)

    @classmethod
    def from_bytes(cls, data: bytes) -> Self:
        header, blobs = _unpack(data)
        if header["kind"] != cls.name:
            raise ValueError(f"artifact holds a {header['kind']!r} model, not {cls.name!r}")
        model = cls(header["params"])
        model.metrics = {k: float(v) for k, v in header["metrics"].items()}
        model.holdout_rounds = [int(r) for r in header["holdout_rounds"]]
        model.holdout_scores = _array_from(blobs["holdout_scores"])
        model.holdout_targets = _array_from(blobs["holdout_targets"])
        model.fitted = bool(header["fitted"])
        model._load_state(blobs)
        return model


# ---------------------------------------------------------------------------------------------------------------
# pytorch_transformer


class _DrawTransformer(nn.Module):
    def __init__(self, p: TransformerParams) -> None:
        super().__init__()
        if p.d_model % p.heads:
            raise ValueError("d_model must be divisible by heads")
        self.embed = nn.Linear(NUMBER_MAX, p.d_model)
        self.position = nn.Parameter(torch.zeros(1, p.context, p.d_model))
        layer = nn.TransformerEncoderLayer(
            p.d_model, p.heads, p.ff_dim, p.dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, p.layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(p.d_model)
        self.head = nn.Linear(p.d_model, NUMBER_MAX)
        nn.init.normal_(self.position, std=0.02)
        nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, math.log(BASE_RATE / (1 - BASE_RATE)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(self.embed(x) + self.position)
        return self.head(self.norm(hidden[:, -1, :]))


class TransformerModel(LottoModel):
    """A tiny Transformer encoder over the last ``context`` draws (45-dim multi-hot each, zero-padded on
    the left) predicting the next draw's multi-hot with binary cross-entropy. Output bias starts at
    logit(6/45), so an untrained model is the random baseline."""

    name = "pytorch_transformer"
    params_type = TransformerParams

    def __init__(self, params: LottoModelParams | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.net: _DrawTransformer | None = None

    @property
    def p(self) -> TransformerParams:
        assert isinstance(self.params, TransformerParams)
        return self.params

    def _windows(self, matrix: np.ndarray, indices: Sequence[int]) -> torch.Tensor:
        k = self.p.context
        padded = np.vstack([np.zeros((k, NUMBER_MAX), dtype=np.float32), matrix])
        return torch.from_numpy(np.stack([padded[i : i + k] for i in indices]))  # rows i-k..i-1 of the original

    def _train(self, draws: Sequence[Draw], progress: Progress) -> None:
        p = self.p
        matrix = multi_hot(draws)
        indices = list(range(1, len(draws)))
        inputs = self._windows(matrix, indices)
        targets = torch.from_numpy(matrix[indices])
        with torch_single_thread(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(p.seed)
            net = _DrawTransformer(p)
            optimiser = torch.optim.AdamW(net.parameters(), lr=p.learning_rate, weight_decay=p.weight_decay)
            loss_fn = nn.BCEWithLogitsLoss()
            order_rng = torch.Generator().manual_seed(p.seed)
            net.train()
            for epoch in range(p.epochs):
                order = torch.randperm(len(indices), generator=order_rng)
                total = 0.0
                for start in range(0, len(indices), p.batch_size):
                    batch = order[start : start + p.batch_size]
                    optimiser.zero_grad()
                    loss = loss_fn(net(inputs[batch]), targets[batch])
                    loss.backward()
                    optimiser.step()
                    total += float(loss.detach()) * len(batch)
                progress(100.0 * (epoch + 1) / p.epochs, {"epoch": epoch + 1, "train_loss": total / len(indices)})
            net.eval()
        self.net = net

    def _predict_at(self, draws: Sequence[Draw], indices: Sequence[int]) -> np.ndarray:
        assert self.net is not None
        with torch_single_thread(), torch.no_grad():
            logits = self.net(self._windows(multi_hot(draws), indices))
        return torch.sigmoid(logits).numpy().astype(np.float64)

    def _state_blobs(self) -> dict[str, bytes]:
        assert self.net is not None
        buffer = io.BytesIO()
        torch.save(self.net.state_dict(), buffer)
        return {"state_dict": buffer.getvalue()}

    def _load_state(self, blobs: Mapping[str, bytes]) -> None:
        if "state_dict" in blobs:
            net = _DrawTransformer(self.p)
            net.load_state_dict(torch.load(io.BytesIO(blobs["state_dict"]), weights_only=True))
            net.eval()
            self.net = net


# ---------------------------------------------------------------------------------------------------------------
# sklearn_ensemble

FEATURE_WINDOWS: Final = (5, 10, 25, 50, 100)
GAP_CAP: Final = 100


def number_features(matrix: np.ndarray, indices: Sequence[int], windows: Sequence[int] = FEATURE_WINDOWS) -> np.ndarray:
    """Per-number features for predicting the draw at each index from the rows before it.

    Columns: share of the last w draws containing the number for each w in ``windows`` (fewer at the
    start), draws since last seen (capped at 100, 100 if never), odd, high (23–45), last digit.
    Rows: index-major, number-minor (len(indices) × 45).
    """
    n = matrix.shape[0]
    cumulative = np.vstack([np.zeros((1, NUMBER_MAX)), np.cumsum(matrix, axis=0)])
    last_seen = np.full((n + 1, NUMBER_MAX), -1, dtype=np.int64)
    current = np.full(NUMBER_MAX, -1, dtype=np.int64)
    for t in range(n):
        last_seen[t] = current
        current = np.where(matrix[t] > 0, t, current)
    last_seen[n] = current
    numbers = np.arange(1, NUMBER_MAX + 1)
    static = np.column_stack([numbers % 2, (numbers >= HIGH_MIN).astype(np.int64), numbers % 10]).astype(np.float64)
    blocks = []
    for t in indices:
        columns = []
        for w in windows:
            start = max(0, t - w)
            span = max(1, t - start)
            columns.append((cumulative[t] - cumulative[start]) / span)
        seen = last_seen[t]
        gap = np.where(seen < 0, GAP_CAP, np.minimum(t - 1 - seen, GAP_CAP))
        columns.append(gap.astype(np.float64))
        blocks.append(np.column_stack([*columns, static]))
    return np.vstack(blocks) if blocks else np.zeros((0, len(windows) + 4))


class SklearnEnsembleModel(LottoModel):
    """A scikit-learn tree ensemble (histogram gradient boosting by default, or a random forest) over
    per-number features (:func:`number_features`) predicting "this number appears in the next draw"."""

    name = "sklearn_ensemble"
    params_type = SklearnEnsembleParams

    def __init__(self, params: LottoModelParams | Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self.estimator: HistGradientBoostingClassifier | RandomForestClassifier | None = None

    @property
    def p(self) -> SklearnEnsembleParams:
        assert isinstance(self.params, SklearnEnsembleParams)
        return self.params

    def _train(self, draws: Sequence[Draw], progress: Progress) -> None:
        p = self.p
        matrix = multi_hot(draws)
        indices = list(range(min(p.min_history, len(draws) - 1), len(draws)))
        features = number_features(matrix, indices)
        targets = matrix[indices].reshape(-1).astype(np.int64)
        estimator: HistGradientBoostingClassifier | RandomForestClassifier
        if p.estimator == "hist_gradient_boosting":
            estimator = HistGradientBoostingClassifier(
                learning_rate=p.learning_rate,
                max_depth=p.max_depth,
                min_samples_leaf=p.min_samples_leaf,
                early_stopping=False,
                warm_start=True,
                random_state=p.seed,
                max_iter=0 + p.step,
            )
        else:
            estimator = RandomForestClassifier(
                max_depth=p.max_depth,
                min_samples_leaf=p.min_samples_leaf,
                warm_start=True,
                random_state=p.seed,
                n_jobs=1,
                n_estimators=p.step,
            )
        done = 0
        while done < p.n_estimators:
            done = min(p.n_estimators, done + p.step)
            if isinstance(estimator, HistGradientBoostingClassifier):
                estimator.set_params(max_iter=done)
            else:
                estimator.set_params(n_estimators=done)
            with threadpool_limits(1):
                estimator.fit(features, targets)
            progress(100.0 * done / p.n_estimators, {"estimators": done})
        self.estimator = estimator

    def _predict_at(self, draws: Sequence[Draw], indices: Sequence[int]) -> np.ndarray:
        assert self.estimator is not None
        features = number_features(multi_hot(draws), indices)
        positive = list(self.estimator.classes_).index(1)
        with threadpool_limits(1):
            return self.estimator.predict_proba(features)[:, positive].reshape(len(indices), NUMBER_MAX)

    def _state_blobs(self) -> dict[str, bytes]:
        # scikit-learn estimators only serialise through pickle: load artifacts from trusted storage only
        # (the registry verifies their sha256).
        return {"estimator": pickle.dumps(self.estimator, protocol=pickle.HIGHEST_PROTOCOL)}

    def _load_state(self, blobs: Mapping[str, bytes]) -> None:
        if "estimator" in blobs:
            self.estimator = pickle.loads(blobs["estimator"])


# ---------------------------------------------------------------------------------------------------------------
# enhanced_predictor


class EnhancedPredictorModel(LottoModel):
    """The transparent frequency/recency scorer of the ``enhanced`` generator (:mod:`ml.lotto.strategies`):
    smoothed (optionally recency-weighted) counts over the last ``window`` draws with the machine
    strategy's per-number adjustment (1호기 hot ×1.15, 3호기 odd ×1.12; 2호기's ×1.20 is set-level and
    not a per-number score). Nothing is learned; ``fit`` measures it on held-out draws."""

    name = "enhanced_predictor"
    params_type = EnhancedPredictorParams

    @property
    def p(self) -> EnhancedPredictorParams:
        assert isinstance(self.params, EnhancedPredictorParams)
        return self.params

    def _train(self, draws: Sequence[Draw], progress: Progress) -> None:
        progress(100.0, {"draws": len(draws)})

    def _predict_at(self, draws: Sequence[Draw], indices: Sequence[int]) -> np.ndarray:
        p = self.p
        rows = []
        for index in indices:
            window = draws[max(0, index - p.window) : index]
            if not window:
                rows.append(np.full(NUMBER_MAX, BASE_RATE))
                continue
            model = number_model(
                window,
                p.machine if p.apply_strategy else None,
                smoothing=p.smoothing,
                half_life=p.half_life,
            )
            rows.append(model.probabilities())
        return np.vstack(rows)


MODEL_TYPES: Final[dict[str, type[LottoModel]]] = {
    TransformerModel.name: TransformerModel,
    SklearnEnsembleModel.name: SklearnEnsembleModel,
    EnhancedPredictorModel.name: EnhancedPredictorModel,
}


def create_model(name: str, params: Mapping[str, Any] | None = None) -> LottoModel:
    """A new, unfitted member by its API name; unknown names or parameters raise ``ValueError``."""
    if name not in MODEL_TYPES:
        raise ValueError(f"unknown lotto model {name!r}; valid: {', '.join(MODEL_TYPES)}")
    return MODEL_TYPES[name](params)


def load_model(data: bytes) -> LottoModel:
    """Any member from its ``to_bytes()`` artifact."""
    header, _ = _unpack(data)
    kind = header.get("kind")
    if kind not in MODEL_TYPES:
        raise ValueError(f"unknown lotto model kind {kind!r}")
    return MODEL_TYPES[kind].from_bytes(data)
