"""Learned conversion probability, trained on the organisation's own history.

Three candidate scorers are compared by cross-validated ROC AUC on the training part of a
stratified split, the best is calibrated on its out-of-fold predictions, and everything is
reported on the held-out part:

* ``frequency``: per-field smoothed conversion rates combined naive-Bayes style (numerics
  binned by quantiles, missing is its own bin);
* ``logistic``: L2-regularised logistic regression on one-hot categoricals and standardised
  numerics with missing indicators;
* ``gbt``: histogram gradient-boosted trees with native categorical support.

Both additive scorers are stored as JSON tables; the trees as a skops file that is only ever
loaded against :data:`TRUSTED_TYPES` (never pickle, never ``trusted=True``). Single-lead
scoring never calls scikit-learn: it walks the trees in pure Python (``predict_row`` is
tested to equal ``predict_frame``, which catches drift in scikit-learn's internals).
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
import zipfile
from bisect import bisect_right
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn import __version__ as sklearn_version
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

from leadflow.errors import DomainError
from leadflow.scoring.features import (
    ColumnCodes,
    ColumnKind,
    ColumnSpec,
    FeatureSpec,
    HistoryError,
    infer_spec,
    parse_target,
    read_history,
)

log = logging.getLogger(__name__)

__all__ = [
    "CANDIDATES",
    "DEFAULT_GRADE_SHARES",
    "GRADES",
    "TRUSTED_TYPES",
    "ColumnKind",
    "ColumnSpec",
    "Contribution",
    "ConversionModel",
    "FeatureSpec",
    "HistoryError",
    "ModelError",
    "TrainResult",
    "evaluate",
    "infer_spec",
    "parse_target",
    "read_history",
    "score_frame",
    "train",
]

GRADES = ("A+", "A", "B", "C", "D")
# Top 5% of out-of-fold probabilities are A+, the next 15% A, and so on.
DEFAULT_GRADE_SHARES = {"A+": 0.05, "A": 0.15, "B": 0.30, "C": 0.30, "D": 0.20}
CANDIDATES = ("frequency", "logistic", "gbt")
# Ties in CV AUC (rare) go to the simpler, cheaper, more explainable scorer.
_SIMPLICITY = {"frequency": 0, "logistic": 1, "gbt": 2}

MIN_PER_CLASS = 20  # positives and negatives each: fewer cannot fill 5 folds and a holdout
ISOTONIC_MIN_POSITIVES = 100  # below this, isotonic steps are noise: use a sigmoid
FREQUENCY_PRIOR_ROWS = 20.0  # m-estimate: a bin's rate is pulled to the base rate by 20 rows
FREQUENCY_BINS = 10
LOGISTIC_CS = (0.03, 0.3, 3.0)  # searched by the same cross-validation
GBT_MAX_ITER = 150
PARALLEL_MIN_ROWS = 20_000  # smaller frames are scored by scikit-learn on one thread
QUICKSCORER_BLOCK = 5_000  # rows per block: the block's state bytes stay in cache

BLOB_FORMAT = "leadflow.conversion-model"
BLOB_VERSION = 1
# The only non-default types a gbt blob may hold (skops also trusts its own defaults:
# builtins, numpy arrays and dtypes, scikit-learn estimators). Anything else is refused.
TRUSTED_TYPES = (
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    # HistGradientBoosting's column preprocessor validates numerics with
    # partial(check_array, …): a named function, not arbitrary code.
    "functools.partial",
    "sklearn.utils.validation.check_array",
)


class ModelError(DomainError):
    """A stored model cannot be loaded: wrong format, kind, or untrusted content."""


@dataclass(frozen=True)
class Contribution:
    """One feature's share of a lead's score, in log-odds of the model's raw score.

    ``effect`` is positive when the value raises the odds of converting compared with an
    average lead; ``exp(effect)`` is the factor on the odds.
    """

    feature: str
    value: str
    effect: float

    @property
    def words(self) -> str:
        """The contribution as a sentence for the lead's timeline."""
        verb = "raises" if self.effect > 0 else "lowers"
        return (
            f"{self.feature} = {self.value} {verb} the odds of converting "
            f"(×{math.exp(self.effect):.2f})"
        )


class _Scorer(Protocol):
    """A fitted candidate: raw log-odds-like scores, per frame and per lead."""

    def raw_frame(self, X: np.ndarray) -> np.ndarray: ...

    def raw_values(self, values: list[float]) -> float: ...

    def contributions(self, values: list[float]) -> dict[int, float]: ...


# --- additive scorers: frequency and logistic ------------------------------------------------


class _Additive:
    """``raw = bias + Σ term_j(x_j)``: a table per column, or a clipped linear term.

    A term is either ``{"type": "table", "column", "edges" | None, "weights", "baseline"}``
    (a categorical code, or a numeric bin by ``edges``, indexes ``weights``; missing is the
    last slot) or ``{"type": "linear", "column", "log", "lo", "hi", "mean", "std",
    "weight", "missing_weight", "baseline"}``. ``baseline`` is the term's average over the
    training rows, so that contributions are relative to an average lead.
    """

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.payload = dict(payload)
        self.bias = float(payload["bias"])
        self.terms = [dict(t) for t in payload["terms"]]
        self._arrays = [
            (
                np.asarray(t["weights"], dtype=np.float64),
                None if t.get("edges") is None else np.asarray(t["edges"], dtype=np.float64),
            )
            if t["type"] == "table"
            else (None, None)
            for t in self.terms
        ]

    def _term_frame(self, k: int, column: np.ndarray) -> np.ndarray:
        term = self.terms[k]
        missing = np.isnan(column)
        if term["type"] == "table":
            weights, edges = self._arrays[k]
            assert weights is not None
            if edges is None:
                slots = np.where(missing, len(weights) - 1, column).astype(np.intp)
            else:
                slots = np.searchsorted(edges, column, side="right")
                slots[missing] = len(weights) - 1
            return weights[slots]
        t = np.log1p(np.maximum(column, 0.0)) if term["log"] else column
        t = np.clip(t, term["lo"], term["hi"])
        out = term["weight"] * ((t - term["mean"]) / term["std"])
        out[missing] = term["missing_weight"]
        return out

    def _term_value(self, k: int, x: float) -> float:
        term = self.terms[k]
        if term["type"] == "table":
            weights = term["weights"]
            if x != x:
                return float(weights[-1])
            edges = term["edges"]
            return float(weights[int(x) if edges is None else bisect_right(edges, x)])
        if x != x:
            return float(term["missing_weight"])
        t = math.log1p(max(x, 0.0)) if term["log"] else x
        lo, hi = term["lo"], term["hi"]
        t = lo if t < lo else hi if t > hi else t
        return float(term["weight"] * ((t - term["mean"]) / term["std"]))

    def raw_frame(self, X: np.ndarray) -> np.ndarray:
        raw = np.full(X.shape[0], self.bias)
        for k, term in enumerate(self.terms):
            raw += self._term_frame(k, X[:, term["column"]])
        return raw

    def raw_values(self, values: list[float]) -> float:
        raw = self.bias
        for k, term in enumerate(self.terms):
            raw += self._term_value(k, values[term["column"]])
        return raw

    def contributions(self, values: list[float]) -> dict[int, float]:
        return {
            term["column"]: self._term_value(k, values[term["column"]]) - term["baseline"]
            for k, term in enumerate(self.terms)
        }

    def with_baselines(self, X: np.ndarray) -> _Additive:
        """The same scorer with each term's training average recorded as its baseline."""
        for k, term in enumerate(self.terms):
            term["baseline"] = float(np.mean(self._term_frame(k, X[:, term["column"]])))
        self.payload["terms"] = self.terms
        return self


def _logit(p: np.ndarray | float) -> Any:
    return np.log(p) - np.log1p(-p)


def _category_slots(column: np.ndarray, spec_column: ColumnSpec) -> np.ndarray:
    """Codes 0..K (K = other) as slots, missing as slot K + 1."""
    return np.where(np.isnan(column), spec_column.other_code + 1, column).astype(np.intp)


def _fit_frequency(X: np.ndarray, y: np.ndarray, spec: FeatureSpec) -> _Additive:
    """Naive-Bayes style scorer: each field's smoothed conversion rate, as a log-odds shift.

    1. A field's value (category, quantile bin of a number, or "missing") gets the rate
       ``(positives + m·p0) / (rows + m)``: an m-estimate that pulls thin bins to the base
       rate ``p0`` instead of letting five lucky rows claim 100%.
    2. Its weight is ``logit(rate) − logit(p0)``, which by Bayes' rule is the naive-Bayes
       log-likelihood ratio of that value; the score adds the weights of all fields.
    3. Correlated fields are counted twice (the naive part); calibration repairs the scale,
       cross-validation tells whether the ranking is still competitive.
    """
    p0 = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
    m = FREQUENCY_PRIOR_ROWS
    terms = []
    for j, col in enumerate(spec.columns):
        column = X[:, j]
        edges: list[float] | None = None
        if col.kind is ColumnKind.CATEGORICAL:
            slots = _category_slots(column, col)
            n_slots = col.other_code + 2
        else:
            present = column[~np.isnan(column)]
            qs = np.linspace(0, 1, FREQUENCY_BINS + 1)[1:-1]
            edges = np.unique(np.quantile(present, qs)).tolist() if len(present) else []
            slots = np.searchsorted(np.asarray(edges), column, side="right")
            n_slots = len(edges) + 2
            slots[np.isnan(column)] = n_slots - 1
        rows = np.bincount(slots, minlength=n_slots)
        positives = np.bincount(slots, weights=y, minlength=n_slots)
        rate = (positives + m * p0) / (rows + m)
        weights = _logit(rate) - _logit(p0)
        terms.append({"type": "table", "column": j, "edges": edges,
                      "weights": weights.tolist(), "baseline": 0.0})
    # Weights are already relative to the base rate: baselines stay 0.
    return _Additive({"bias": float(_logit(p0)), "terms": terms})


def _logistic_prep(X: np.ndarray, spec: FeatureSpec) -> list[dict[str, Any]]:
    """Per-column transforms fitted on training rows: one-hot width, or numeric scaling.

    Heavy-tailed non-negative numerics (headcount, revenue) are log1p-transformed, and
    every numeric is clipped to its training range, so a typo of 10⁹ employees cannot
    dominate a linear score.
    """
    prep: list[dict[str, Any]] = []
    for j, col in enumerate(spec.columns):
        column = X[:, j]
        if col.kind is ColumnKind.CATEGORICAL:
            prep.append({"type": "table", "column": j, "width": col.other_code + 2})
            continue
        present = column[~np.isnan(column)]
        if len(present) == 0:
            present = np.zeros(1)
        q50, q99 = np.quantile(present, [0.5, 0.99])
        log = bool(present.min() >= 0 and q99 > 100 and q99 > 10 * max(q50, 1.0))
        t = np.log1p(present) if log else present
        std = float(t.std())
        prep.append({
            "type": "linear", "column": j, "width": 2, "log": log,
            "lo": float(t.min()), "hi": float(t.max()),
            "mean": float(t.mean()), "std": std if std > 0 else 1.0,
        })
    return prep


def _logistic_design(X: np.ndarray, prep: list[dict[str, Any]]) -> sparse.csr_matrix:
    """The sparse design matrix: one-hot slots, and (z, missing) pairs for numerics."""
    n = X.shape[0]
    indices = np.empty((n, 2 * len(prep)), dtype=np.int64)
    data = np.zeros((n, 2 * len(prep)))
    offset = 0
    for k, p in enumerate(prep):
        column = X[:, p["column"]]
        missing = np.isnan(column)
        if p["type"] == "table":
            slots = np.where(missing, p["width"] - 1, column).astype(np.int64)
            # Two entries per column keep the matrix rectangular; the second is a stored 0.
            indices[:, 2 * k] = offset + slots
            data[:, 2 * k] = 1.0
            indices[:, 2 * k + 1] = offset + np.where(slots == 0, 1, 0)
        else:
            t = np.log1p(np.maximum(column, 0.0)) if p["log"] else column
            z = (np.clip(t, p["lo"], p["hi"]) - p["mean"]) / p["std"]
            indices[:, 2 * k] = offset
            data[:, 2 * k] = np.where(missing, 0.0, z)
            indices[:, 2 * k + 1] = offset + 1
            data[:, 2 * k + 1] = missing
        offset += p["width"]
    matrix = sparse.csr_matrix(
        (data.ravel(), indices.ravel(), np.arange(0, n * 2 * len(prep) + 1, 2 * len(prep))),
        shape=(n, offset),
    )
    matrix.eliminate_zeros()
    return matrix


def _fit_logistic(X: np.ndarray, y: np.ndarray, spec: FeatureSpec, c: float) -> _Additive:
    """L2-regularised logistic regression, turned into additive terms."""
    prep = _logistic_prep(X, spec)
    design = _logistic_design(X, prep)
    model = LogisticRegression(C=c, max_iter=1000)
    with warnings.catch_warnings():
        # A C too weak to converge in 1000 steps simply loses the cross-validation.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(design, y)
    coef = model.coef_[0]
    terms = []
    offset = 0
    for p in prep:
        w = coef[offset : offset + p["width"]]
        if p["type"] == "table":
            terms.append({"type": "table", "column": p["column"], "edges": None,
                          "weights": w.tolist(), "baseline": 0.0})
        else:
            terms.append({
                "type": "linear", "column": p["column"], "log": p["log"], "lo": p["lo"],
                "hi": p["hi"], "mean": p["mean"], "std": p["std"], "weight": float(w[0]),
                "missing_weight": float(w[1]), "baseline": 0.0,
            })
        offset += p["width"]
    scorer = _Additive({"bias": float(model.intercept_[0]), "terms": terms, "C": c})
    return scorer.with_baselines(X)


# --- gradient-boosted trees -----------------------------------------------------------------


def _fit_gbt(X: np.ndarray, y: np.ndarray, spec: FeatureSpec, seed: int) -> _Trees:
    """Histogram gradient boosting, kept modest: ≤150 small trees with early stopping.

    Small trees (8 leaves), because histories are small and positives rare: on a few
    thousand leads, bigger trees overfit the interactions they are meant to find; 8 leaves
    also let the batch scorer hold each tree's leaves in one byte. Leaves hold at least
    10–50 leads, growing with the history. Training runs on one OpenMP thread (see train).
    """
    mask = np.array([c.kind is ColumnKind.CATEGORICAL for c in spec.columns])
    estimator = HistGradientBoostingClassifier(
        learning_rate=0.1,
        max_iter=GBT_MAX_ITER,
        max_leaf_nodes=8,
        min_samples_leaf=int(max(10, min(50, len(y) // 200))),
        l2_regularization=1.0,
        categorical_features=mask if mask.any() else None,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=20,
        random_state=seed,
    )
    estimator.fit(X, y)
    return _Trees(estimator, spec)


def _bits(words: np.ndarray) -> list[int]:
    """The set bits of one scikit-learn bitset row (8 × uint32 = categories 0..255)."""
    return [32 * w + b for w, word in enumerate(words.tolist()) for b in range(32) if word >> b & 1]


class _Trees:
    """A fitted HistGradientBoostingClassifier and two fast evaluators of its trees.

    scikit-learn's own prediction is too slow for both of our uses: ``predict_proba`` on one
    row costs milliseconds (per-tree Python calls, OpenMP start-up), and on a million rows
    it costs ~45 ns per tree per row on one core. So at load time the trees are flattened:

    * for one lead, a pure-Python walker mirroring ``_predict_one_from_raw_data``: NaN
      follows ``missing_go_to_left``; a categorical value goes left if in the node's
      bitset, right if a known category, else the missing way; a number goes left if
      ``<=`` the threshold. Internal nodes keep the training-count weighted mean of their
      leaves, for Saabas path attributions;
    * for frames, QuickScorer (Lucchese et al., SIGIR 2015) in numpy: each tree's ≤ 8
      leaves are bits of one byte; every node that sends a row right clears the bits of
      its left subtree's leaves, and the lowest bit left standing is the exit leaf. Per
      column, the masks of all its nodes fold into one table indexed by category (or by
      the rank of the value among the column's thresholds), so scoring a block of rows is
      one gather-and-AND per column and one gather per tree.

    Both are checked against scikit-learn on synthetic rows at load time (values on,
    just above and just below every threshold; every category; missing). Should a future
    scikit-learn change its tree internals, the check fails and scikit-learn's own,
    slower prediction is used instead, with a warning.
    """

    def __init__(self, estimator: HistGradientBoostingClassifier, spec: FeatureSpec) -> None:
        n_columns = len(spec.columns)
        if estimator.n_trees_per_iteration_ != 1 or estimator.n_features_in_ != n_columns:
            raise ModelError("gbt model does not match its feature spec")
        self.estimator = estimator
        original, categories = _column_map(estimator, n_columns)
        known_bitsets, f_idx_map = estimator._bin_mapper.make_known_categories_bitsets()
        self.baseline = float(np.asarray(estimator._baseline_prediction).ravel()[0])
        feature: list[int] = []
        threshold: list[float] = []
        left: list[int] = []
        right: list[int] = []
        missing: list[int] = []
        left_set: list[frozenset[float] | None] = []
        known: list[frozenset[float] | None] = []
        value: list[float] = []
        expected: list[float] = []
        roots: list[int] = []
        for (predictor,) in estimator._predictors:
            nodes = predictor.nodes
            base = len(feature)
            roots.append(base)
            means = _node_means(nodes)
            for node, mean in zip(nodes, means, strict=True):
                l_child, r_child = base + int(node["left"]), base + int(node["right"])
                internal_f = int(node["feature_idx"])
                leaf = bool(node["is_leaf"])
                feature.append(-1 if leaf else int(original[internal_f]))
                threshold.append(float(node["num_threshold"]))
                left.append(l_child)
                right.append(r_child)
                missing.append(l_child if node["missing_go_to_left"] else r_child)
                if not leaf and node["is_categorical"]:
                    raw_values = categories[internal_f]
                    assert raw_values is not None
                    lbits = predictor.raw_left_cat_bitsets[int(node["bitset_idx"])]
                    kbits = known_bitsets[int(f_idx_map[internal_f])]
                    left_set.append(frozenset(float(raw_values[b]) for b in _bits(lbits)))
                    known.append(frozenset(float(raw_values[b]) for b in _bits(kbits)))
                else:
                    left_set.append(None)
                    known.append(None)
                value.append(float(node["value"]))
                expected.append(mean)
        self._walk = (feature, threshold, left, right, missing, left_set, known, value)
        self._expected = expected
        self._roots = roots
        self._tables = self._quickscorer_tables(spec)
        self.fast = self._tables is not None and self._agrees_with_sklearn(spec)
        if not self.fast:
            log.warning(
                "gbt fast paths disagree with scikit-learn %s; scoring through scikit-learn",
                sklearn_version,
            )

    def _next(self, i: int, x: float) -> int:
        """The child of internal node ``i`` that value ``x`` goes to."""
        _, threshold, left, right, missing, left_set, known, _ = self._walk
        if x != x:
            return missing[i]
        cats = left_set[i]
        if cats is None:
            return left[i] if x <= threshold[i] else right[i]
        if x in cats:
            return left[i]
        return right[i] if x in known[i] else missing[i]  # type: ignore[operator]

    def _leaves(self, i: int) -> list[int]:
        """The leaves under node ``i``, left to right."""
        feature, _, left, right, *_ = self._walk
        if feature[i] < 0:
            return [i]
        return self._leaves(left[i]) + self._leaves(right[i])

    def _quickscorer_tables(self, spec: FeatureSpec) -> _Tables | None:
        """Per-column AND-mask tables and per-tree leaf tables; None if a tree is too big."""
        feature, threshold, left, right, missing, _, _, value = self._walk
        n_trees = len(self._roots)
        leaf_values = np.zeros((n_trees, 8))
        masks: dict[int, list[tuple[int, int, int]]] = {}  # column -> [(tree, mask, node)]
        for t, root in enumerate(self._roots):
            leaves = self._leaves(root)
            if len(leaves) > 8:
                return None
            bit = {leaf: k for k, leaf in enumerate(leaves)}
            leaf_values[t, : len(leaves)] = [value[i] for i in leaves]
            stack = [root]
            while stack:
                i = stack.pop()
                if feature[i] < 0:
                    continue
                mask = 0xFF
                for leaf in self._leaves(left[i]):
                    mask &= ~(1 << bit[leaf])
                masks.setdefault(feature[i], []).append((t, mask & 0xFF, i))
                stack += [left[i], right[i]]
        columns: list[tuple[int, np.ndarray, np.ndarray | None]] = []
        for j, nodes in sorted(masks.items()):
            col = spec.columns[j]
            if col.kind is ColumnKind.CATEGORICAL:
                slots = [float(c) for c in range(col.other_code + 1)] + [math.nan]
                table = np.full((len(slots), n_trees), 0xFF, dtype=np.uint8)
                for t, mask, i in nodes:
                    for s, x in enumerate(slots):
                        if self._next(i, x) == right[i]:
                            table[s, t] &= mask
                columns.append((j, table, None))
                continue
            # A value clears the masks of the nodes whose threshold is below it: a prefix
            # of the nodes sorted by threshold. The last row is for missing values.
            nodes.sort(key=lambda tmi: threshold[tmi[2]])
            table = np.empty((len(nodes) + 2, n_trees), dtype=np.uint8)
            running = np.full(n_trees, 0xFF, dtype=np.uint8)
            table[0] = running
            for k, (t, mask, _) in enumerate(nodes, start=1):
                running[t] &= mask
                table[k] = running
            table[-1] = 0xFF
            for t, mask, i in nodes:
                if missing[i] == right[i]:
                    table[-1, t] &= mask
            columns.append((j, table, np.array([threshold[i] for _, _, i in nodes])))
        lowest_bit = [(s & -s).bit_length() - 1 if s else 0 for s in range(256)]
        exits = leaf_values[:, lowest_bit]  # tree × byte state -> exit leaf value
        return _Tables(columns, exits.ravel(), np.arange(n_trees, dtype=np.intp) * 256)

    def _agrees_with_sklearn(self, spec: FeatureSpec) -> bool:
        """Compare both fast paths with scikit-learn on rows built to hit every branch."""
        rng = np.random.default_rng(0)
        n = 240
        feature, threshold, *_ = self._walk
        X = np.empty((n, len(spec.columns)))
        for j, col in enumerate(spec.columns):
            if col.kind is ColumnKind.CATEGORICAL:
                X[:, j] = rng.integers(0, col.other_code + 1, n)
            else:
                cuts = np.array([threshold[i] for i, f in enumerate(feature) if f == j])
                if len(cuts) == 0:
                    X[:, j] = rng.normal(size=n)
                    continue
                at = rng.choice(cuts, n)
                towards = rng.choice(np.array([-np.inf, np.nan, np.inf]), n)
                X[:, j] = np.where(np.isnan(towards), at, np.nextafter(at, towards))
            X[rng.random(n) < 0.15, j] = np.nan
        reference = self._sklearn(X)
        if not np.allclose(self._quickscore(X), reference, rtol=0, atol=1e-9):
            return False
        return all(
            abs(self._raw_walk(row) - ref) <= 1e-9
            for row, ref in zip(X[:60].tolist(), reference[:60].tolist(), strict=True)
        )

    def _sklearn(self, X: np.ndarray) -> np.ndarray:
        # One OpenMP region per tree: below PARALLEL_MIN_ROWS rows a second thread costs
        # more in barriers than it saves.
        threads = 1 if X.shape[0] < PARALLEL_MIN_ROWS else None
        raw = self.estimator._raw_predict(X, n_threads=threads)
        return np.asarray(raw[:, 0], dtype=np.float64)

    def _quickscore(self, X: np.ndarray) -> np.ndarray:
        assert self._tables is not None
        columns, exits, offsets = self._tables
        out = np.empty(X.shape[0])
        for start in range(0, X.shape[0], QUICKSCORER_BLOCK):
            block = X[start : start + QUICKSCORER_BLOCK]
            state = np.full((block.shape[0], len(offsets)), 0xFF, dtype=np.uint8)
            for j, table, thresholds in columns:
                values = block[:, j]
                missing = np.isnan(values)
                if thresholds is None:
                    slots = np.where(missing, len(table) - 1, values).astype(np.intp)
                else:
                    slots = np.searchsorted(thresholds, values, side="left")
                    slots[missing] = len(table) - 1
                state &= table[slots]
            leaves = exits[state.astype(np.intp) + offsets]
            out[start : start + block.shape[0]] = self.baseline + leaves.sum(axis=1)
        return out

    def raw_frame(self, X: np.ndarray) -> np.ndarray:
        return self._quickscore(X) if self.fast else self._sklearn(X)

    def raw_values(self, values: list[float]) -> float:
        if not self.fast:
            return float(self._sklearn(np.array([values], dtype=np.float64))[0])
        return self._raw_walk(values)

    def _raw_walk(self, values: list[float]) -> float:
        feature, threshold, left, right, missing, left_set, known, value = self._walk
        total = self.baseline
        for i in self._roots:
            f = feature[i]
            while f >= 0:
                x = values[f]
                if x != x:
                    i = missing[i]
                else:
                    cats = left_set[i]
                    if cats is None:
                        i = left[i] if x <= threshold[i] else right[i]
                    elif x in cats:
                        i = left[i]
                    elif x in known[i]:  # type: ignore[operator]
                        i = right[i]
                    else:
                        i = missing[i]
                f = feature[i]
            total += value[i]
        return total

    def contributions(self, values: list[float]) -> dict[int, float]:
        """Saabas attributions: each split's change in expected value goes to its feature."""
        feature = self._walk[0]
        expected = self._expected
        out: dict[int, float] = {}
        for i in self._roots:
            f = feature[i]
            while f >= 0:
                nxt = self._next(i, values[f])
                out[f] = out.get(f, 0.0) + expected[nxt] - expected[i]
                i = nxt
                f = feature[i]
        return out


class _Tables(NamedTuple):
    """QuickScorer tables: per used column (index, mask table, sorted thresholds or None for
    a categorical), exit-leaf values by tree × byte state, and each tree's offset therein."""

    columns: list[tuple[int, np.ndarray, np.ndarray | None]]
    exits: np.ndarray
    offsets: np.ndarray


def _column_map(
    estimator: HistGradientBoostingClassifier, n_columns: int
) -> tuple[np.ndarray, list[np.ndarray | None]]:
    """For each of the estimator's internal features: our column, and its raw categories.

    With categorical features, scikit-learn puts them first and ordinal-encodes them, so its
    feature ``i`` and category ``b`` must be translated back to our column and code.
    """
    preprocessor = estimator._preprocessor
    if preprocessor is None:
        return np.arange(n_columns), [None] * n_columns
    original = np.empty(n_columns, dtype=np.intp)
    categories: list[np.ndarray | None] = [None] * n_columns
    for name, transformer, columns in preprocessor.transformers_:
        if name == "remainder":
            continue
        ours = np.flatnonzero(columns) if np.asarray(columns).dtype == bool else np.asarray(columns)
        span = preprocessor.output_indices_[name]
        internal = np.arange(n_columns)[span]
        original[internal] = ours
        if name == "encoder":
            for k, i in enumerate(internal):
                categories[i] = np.asarray(transformer.categories_[k], dtype=np.float64)
    return original, categories


def _node_means(nodes: np.ndarray) -> list[float]:
    """Each node's training-count weighted mean leaf value (children follow parents)."""
    means = nodes["value"].astype(np.float64).copy()
    counts = nodes["count"].astype(np.float64)
    for i in range(len(nodes) - 1, -1, -1):
        if not nodes["is_leaf"][i]:
            lft, rgt = int(nodes["left"][i]), int(nodes["right"][i])
            total = counts[lft] + counts[rgt]
            means[i] = (
                (counts[lft] * means[lft] + counts[rgt] * means[rgt]) / total
                if total > 0
                else (means[lft] + means[rgt]) / 2
            )
    return means.tolist()


# --- calibration ----------------------------------------------------------------------------


class _Calibration:
    """Raw score → probability, strictly increasing so that ranks and grades survive.

    ``isotonic``: centred isotonic regression. The isotonic fit's constant blocks become
    points (mean score of the block, logit of its rate), joined linearly in log-odds, and
    extended beyond the end blocks with the Platt slope. Plain isotonic steps would tie
    whole blocks of leads on one probability, so a "top 5%" grade could hold 9% or 2%.
    ``sigmoid``: Platt scaling, ``p = 1 / (1 + exp(−(a·raw + b)))``.
    """

    def __init__(self, payload: Mapping[str, Any]) -> None:
        self.payload = dict(payload)
        self.method = str(payload["method"])
        if self.method == "isotonic":
            self.xs = [float(v) for v in payload["x"]]
            self.ys = [float(v) for v in payload["y"]]
            self.slope = float(payload["slope"])
            self._xs = np.asarray(self.xs)
            self._ys = np.asarray(self.ys)
        elif self.method == "sigmoid":
            self.a = float(payload["a"])
            self.b = float(payload["b"])
        else:
            raise ModelError(f"unknown calibration method {self.method!r}")

    def frame(self, raw: np.ndarray) -> np.ndarray:
        if self.method == "sigmoid":
            z = self.a * raw + self.b
        else:
            xs, ys = self._xs, self._ys
            z = np.interp(raw, xs, ys)
            low, high = raw < xs[0], raw > xs[-1]
            z[low] = ys[0] + self.slope * (raw[low] - xs[0])
            z[high] = ys[-1] + self.slope * (raw[high] - xs[-1])
        return 1.0 / (1.0 + np.exp(-z))

    def value(self, raw: float) -> float:
        if self.method == "sigmoid":
            z = self.a * raw + self.b
        else:
            xs, ys = self.xs, self.ys
            if raw < xs[0]:
                z = ys[0] + self.slope * (raw - xs[0])
            elif raw > xs[-1]:
                z = ys[-1] + self.slope * (raw - xs[-1])
            else:
                k = bisect_right(xs, raw) - 1
                if k >= len(xs) - 1:
                    z = ys[-1]
                else:
                    # The same arithmetic as np.interp, so both paths agree to the last bits.
                    slope = (ys[k + 1] - ys[k]) / (xs[k + 1] - xs[k])
                    z = slope * (raw - xs[k]) + ys[k]
        return 1.0 / (1.0 + math.exp(-z))


def _fit_calibration(raw: np.ndarray, y: np.ndarray) -> _Calibration:
    """Fit on out-of-fold raw scores (never on the scores the model was trained on)."""
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
    a, b = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    sigmoid = _Calibration({"method": "sigmoid", "a": a, "b": b})
    if y.sum() < ISOTONIC_MIN_POSITIVES or (len(y) - y.sum()) < ISOTONIC_MIN_POSITIVES:
        return sigmoid
    order = np.argsort(raw, kind="stable")
    scores = raw[order]
    fitted = IsotonicRegression(out_of_bounds="clip").fit(raw, y).predict(scores)
    starts = np.concatenate([[0], np.flatnonzero(np.diff(fitted) != 0) + 1])
    ends = np.concatenate([starts[1:], [len(scores)]])
    if len(starts) < 3:
        return sigmoid
    centres = np.array([scores[s:e].mean() for s, e in zip(starts, ends, strict=True)])
    sizes = (ends - starts).astype(np.float64)
    rates = fitted[starts]
    # A block with no (or only) positives has rate 0 (1): pull it half a lead inwards so
    # that its log-odds are finite.
    rates = np.where(rates <= 0, 0.5 / (sizes + 1), rates)
    rates = np.where(rates >= 1, 1 - 0.5 / (sizes + 1), rates)
    logits = _logit(rates)
    for k in range(1, len(logits)):
        logits[k] = max(logits[k], logits[k - 1] + 1e-9)
    keep = np.concatenate([[True], np.diff(centres) > 0])
    return _Calibration({
        "method": "isotonic", "x": centres[keep].tolist(), "y": logits[keep].tolist(),
        "slope": max(a, 1e-3),
    })


# --- the model --------------------------------------------------------------------------------


@dataclass
class TrainResult:
    """A trained model, ready to be stored as a version: kind, spec, blob and metrics."""

    kind: str
    spec: FeatureSpec
    blob: bytes
    metrics: dict[str, Any]

    def model(self) -> ConversionModel:
        """The model as it will be after loading from storage."""
        return ConversionModel.load(
            kind=self.kind, spec=self.spec.to_json(), blob=self.blob, metrics=self.metrics
        )


class ConversionModel:
    """A trained, calibrated conversion model with its grade cutoffs."""

    def __init__(
        self,
        *,
        kind: str,
        spec: FeatureSpec,
        scorer: _Scorer,
        calibration: _Calibration,
        metrics: Mapping[str, Any],
    ) -> None:
        self.kind = kind
        self.spec = spec
        self.metrics = dict(metrics)
        self._scorer = scorer
        self._calibration = calibration
        self._set_cutoffs()

    def _set_cutoffs(self) -> None:
        try:
            cutoffs = self.metrics["grade_cutoffs"]
            # Ascending C, B, A, A+: a probability's grade is how many cutoffs it reaches.
            self._cutoffs = [float(cutoffs[g]) for g in reversed(GRADES[:-1])]
            self._quantiles = [float(q) for q in self.metrics["probability_quantiles"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model metrics lack grade cutoffs or quantiles ({exc})") from exc
        self._cutoff_array = np.asarray(self._cutoffs)
        self._quantile_array = np.asarray(self._quantiles)

    @classmethod
    def load(
        cls,
        *,
        kind: str,
        spec: Mapping[str, Any],
        blob: bytes,
        metrics: Mapping[str, Any],
    ) -> ConversionModel:
        """Rebuild a stored model. A gbt blob is refused unless every type in it is trusted."""
        feature_spec = FeatureSpec.from_json(spec)
        if kind in ("frequency", "logistic"):
            try:
                data = json.loads(bytes(blob).decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ModelError(f"{kind} model blob is not JSON") from exc
            calibration = _check_blob(data, kind)
            scorer: _Scorer = _Additive(data["scorer"])
        elif kind == "gbt":
            data = _load_skops(bytes(blob))
            calibration = _check_blob(data, kind)
            estimator = data.get("estimator")
            if not isinstance(estimator, HistGradientBoostingClassifier):
                raise ModelError(f"gbt blob holds {type(estimator).__name__}, not trees")
            scorer = _Trees(estimator, feature_spec)
        else:
            raise ModelError(f"unknown model kind {kind!r}; expected one of {CANDIDATES}")
        return cls(
            kind=kind, spec=feature_spec, scorer=scorer, calibration=calibration,
            metrics=metrics,
        )

    def _dump(self) -> bytes:
        header = {"format": BLOB_FORMAT, "version": BLOB_VERSION, "kind": self.kind}
        if isinstance(self._scorer, _Trees):
            import skops.io as sio  # 1.5 s to import: only tree models need it

            # Deflate: the tree arrays are mostly zeros and repeated thresholds (~5× smaller).
            return bytes(sio.dumps({
                **header, "estimator": self._scorer.estimator,
                "calibration": json.dumps(self._calibration.payload),
            }, compression=zipfile.ZIP_DEFLATED))
        assert isinstance(self._scorer, _Additive)
        body = {**header, "scorer": self._scorer.payload, "calibration": self._calibration.payload}
        return json.dumps(body, ensure_ascii=False).encode("utf-8")

    def _predict_matrix(self, X: np.ndarray) -> np.ndarray:
        return self._calibration.frame(self._scorer.raw_frame(X))

    def predict_frame(self, frame: pd.DataFrame, codes: ColumnCodes | None = None) -> np.ndarray:
        """Calibrated conversion probabilities for every row of ``frame`` (``codes``: see
        :meth:`FeatureSpec.encode_frame`)."""
        return self._predict_matrix(self.spec.encode_frame(frame, codes))

    def predict_row(self, row: Mapping[str, Any]) -> float:
        """The calibrated probability of one lead: pure Python, tens of microseconds."""
        return self._calibration.value(self._scorer.raw_values(self.spec.encode_values(row)))

    def explain_row(self, row: Mapping[str, Any], top: int = 5) -> list[Contribution]:
        """The ``top`` largest contributions to a lead's score, largest ``|effect|`` first.

        Effects are log-odds of the raw (uncalibrated) score relative to an average lead:
        exact additive terms for ``frequency`` and ``logistic``, Saabas path attributions
        through the trees for ``gbt``. A zero effect is never listed.
        """
        values = self.spec.encode_values(row)
        effects = self._scorer.contributions(values)
        ranked = sorted(
            ((j, e) for j, e in effects.items() if e != 0), key=lambda je: -abs(je[1])
        )
        columns = self.spec.columns
        return [
            Contribution(columns[j].name, columns[j].label(values[j]), float(e))
            for j, e in ranked[:top]
        ]

    def grade_for(self, probability: float) -> str:
        """A+ … D by the cutoffs learned from out-of-fold probabilities."""
        return GRADES[len(GRADES) - 1 - bisect_right(self._cutoffs, probability)]

    def grades(self, probabilities: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`grade_for`."""
        index = len(GRADES) - 1 - np.searchsorted(self._cutoff_array, probabilities, "right")
        return np.asarray(GRADES, dtype=object)[index]

    def percentile(self, probability: float) -> float:
        """Where a probability falls among the out-of-fold probabilities, 0–100."""
        q = self._quantiles
        lo = _bisect_left(q, probability)
        hi = bisect_right(q, probability)
        if hi > lo:
            return (lo + hi - 1) / 2
        if lo == 0:
            return 0.0
        if lo == len(q):
            return float(len(q) - 1)
        return (lo - 1) + (probability - q[lo - 1]) / (q[lo] - q[lo - 1])

    def percentiles(self, probabilities: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`percentile`."""
        q = self._quantile_array
        p = np.asarray(probabilities, dtype=np.float64)
        lo = np.searchsorted(q, p, "left")
        hi = np.searchsorted(q, p, "right")
        inner = np.clip(lo, 1, len(q) - 1)
        span = q[inner] - q[inner - 1]
        with np.errstate(invalid="ignore", divide="ignore"):
            between = (inner - 1) + (p - q[inner - 1]) / np.where(span > 0, span, 1.0)
        out = np.where(lo == 0, 0.0, np.where(lo == len(q), float(len(q) - 1), between))
        return np.where(hi > lo, (lo + hi - 1) / 2, out)


def _bisect_left(values: list[float], x: float) -> int:
    lo, hi = 0, len(values)
    while lo < hi:
        mid = (lo + hi) // 2
        if values[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def _load_skops(blob: bytes) -> dict[str, Any]:
    """Load a skops blob only if every type in it is a default or listed trusted type."""
    import skops.io as sio  # 1.5 s to import: only tree models need it

    try:
        untrusted = set(sio.get_untrusted_types(data=blob))
    except Exception as exc:  # a corrupt zip, a foreign schema: all mean "not our model"
        raise ModelError(f"gbt model blob is not a skops file ({exc})") from exc
    refused = sorted(untrusted - set(TRUSTED_TYPES))
    if refused:
        raise ModelError(f"gbt model blob holds untrusted types: {', '.join(refused)}")
    data = sio.loads(blob, trusted=list(TRUSTED_TYPES))
    if not isinstance(data, dict):
        raise ModelError("gbt model blob is not a leadflow model")
    return data


def _check_blob(data: Any, kind: str) -> _Calibration:
    if not isinstance(data, dict) or data.get("format") != BLOB_FORMAT:
        raise ModelError("blob is not a leadflow conversion model")
    if data.get("version") != BLOB_VERSION or data.get("kind") != kind:
        raise ModelError(
            f"blob holds a {data.get('kind')!r} model version {data.get('version')!r}, "
            f"expected {kind!r} version {BLOB_VERSION}"
        )
    calibration = data.get("calibration")
    try:
        if isinstance(calibration, str):
            calibration = json.loads(calibration)
        if not isinstance(calibration, dict):
            raise ModelError("model blob has no calibration")
        return _Calibration(calibration)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"model blob has a malformed calibration ({exc})") from exc


# --- training ---------------------------------------------------------------------------------


def train(
    frame: pd.DataFrame,
    *,
    target: str,
    id_column: str | None = None,
    seed: int = 0,
    folds: int = 5,
    holdout: float = 0.2,
    grade_shares: Mapping[str, float] = DEFAULT_GRADE_SHARES,
    progress: Callable[[str], None] | None = None,
    candidates: Collection[str] = CANDIDATES,
) -> TrainResult:
    """Train, compare and calibrate conversion models on a history with known outcomes.

    1. The target is parsed (1/0, won/lost, 成交/未成交 …); there must be at least 20
       positives and 20 negatives. Features are inferred from every other column but the id.
    2. A stratified ``holdout`` share is set aside; it is used only for the final report.
    3. ``folds``-fold stratified cross-validation on the rest scores every candidate (and,
       for logistic regression, each C in :data:`LOGISTIC_CS`) by ROC AUC.
    4. The candidate with the best mean CV AUC is chosen (ties: the simpler one) and refit
       on the whole training part; every candidate is also refit and scored on the holdout,
       so that the report shows all three.
    5. The chosen candidate's out-of-fold scores fit the calibration (centred isotonic, or
       a sigmoid with fewer than 100 positives) and, once calibrated, set the grade cutoffs
       by ``grade_shares`` and the 101 quantiles behind percentiles.
    6. The calibrated model is evaluated on the holdout (AUC, PR AUC, lift, calibration).
    """
    started = time.perf_counter()
    say = progress or (lambda _message: None)
    kinds = _check_candidates(candidates)
    shares = _check_shares(grade_shares)
    if not 2 <= folds <= 20:
        raise HistoryError(f"folds must be between 2 and 20, got {folds}")
    if not 0.05 <= holdout <= 0.5:
        raise HistoryError(f"holdout must be between 0.05 and 0.5, got {holdout}")
    _check_columns(frame, target, id_column)
    y = parse_target(frame[target]).astype(np.int64)
    positives = int(y.sum())
    _check_counts(len(y), positives, target)

    spec = infer_spec(frame, exclude={target} | ({id_column} if id_column else set()))
    if not spec.columns:
        reasons = "; ".join(f"{k}: {v}" for k, v in spec.dropped.items()) or "no other columns"
        raise HistoryError(f"no usable feature columns ({reasons})")
    say(f"{len(y)} rows, {positives} positive, {len(spec.columns)} features")
    X = spec.encode_frame(frame)

    train_rows, test_rows = train_test_split(
        np.arange(len(y)), test_size=holdout, stratify=y, random_state=seed
    )
    X_train, y_train, X_test, y_test = X[train_rows], y[train_rows], X[test_rows], y[test_rows]

    with threadpool_limits(limits=1, user_api="openmp"):
        # Many sub-second fits gain little from a second thread, and when another process
        # holds a core, OpenMP barriers made each fit 30× slower (0.3 s → 10 s measured).
        oof, candidates_report, fitted = _compare(
            X_train, y_train, X_test, y_test, spec, kinds, folds, seed, say
        )
    chosen = max(kinds, key=lambda k: (candidates_report[k]["cv_auc"], -_SIMPLICITY[k]))

    say(f"calibrating {chosen}")
    calibration = _fit_calibration(oof[chosen], y_train)
    oof_probability = calibration.frame(oof[chosen])
    metrics: dict[str, Any] = {
        "candidates": candidates_report,
        "chosen": chosen,
        "calibration_method": calibration.method,
        "target": target,
        "id_column": id_column,
        "seed": seed,
        "folds": folds,
        "n_rows": len(y),
        "n_positive": positives,
        "n_train": len(y_train),
        "n_holdout": len(y_test),
        "features": spec.names,
        "dropped_columns": dict(spec.dropped),
        "grade_shares": shares,
        "grade_cutoffs": _grade_cutoffs(oof_probability, shares),
        "probability_quantiles": np.quantile(oof_probability, np.linspace(0, 1, 101)).tolist(),
    }
    model = ConversionModel(
        kind=chosen, spec=spec, scorer=fitted[chosen], calibration=calibration, metrics=metrics
    )
    metrics["holdout"] = _evaluation(model, model._predict_matrix(X_test), y_test)
    metrics["training_seconds"] = round(time.perf_counter() - started, 3)
    model.metrics = metrics
    say(f"chose {chosen}: holdout ROC AUC {metrics['holdout']['roc_auc']:.3f}")
    return TrainResult(kind=chosen, spec=spec, blob=model._dump(), metrics=metrics)


def _compare(
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    spec: FeatureSpec,
    kinds: list[str],
    folds: int,
    seed: int,
    say: Callable[[str], None],
) -> tuple[dict[str, np.ndarray], dict[str, dict[str, Any]], dict[str, _Scorer]]:
    """Cross-validate every candidate, then refit each on the training part and score the
    holdout: out-of-fold raw scores, the per-candidate report, and the refitted scorers."""
    oof, cv_scores, best_c = _cross_validate(X_train, y_train, spec, kinds, folds, seed, say)
    report: dict[str, dict[str, Any]] = {}
    fitted: dict[str, _Scorer] = {}
    for kind in kinds:
        say(f"fitting {kind} on the training part")
        scorer = _fit(kind, X_train, y_train, spec, seed, best_c)
        fitted[kind] = scorer
        raw = scorer.raw_frame(X_test)
        report[kind] = {
            "cv_auc": float(np.mean(cv_scores[kind])),
            "cv_auc_std": float(np.std(cv_scores[kind])),
            "holdout_auc": float(roc_auc_score(y_test, raw)),
            "holdout_pr_auc": float(average_precision_score(y_test, raw)),
        }
        if kind == "logistic":
            report[kind]["C"] = best_c
        if isinstance(scorer, _Trees):
            report[kind]["n_iter"] = int(scorer.estimator.n_iter_)
    return oof, report, fitted


def _fit(
    kind: str, X: np.ndarray, y: np.ndarray, spec: FeatureSpec, seed: int, c: float
) -> _Scorer:
    if kind == "frequency":
        return _fit_frequency(X, y, spec)
    if kind == "logistic":
        return _fit_logistic(X, y, spec, c)
    return _fit_gbt(X, y, spec, seed)


def _cross_validate(
    X: np.ndarray,
    y: np.ndarray,
    spec: FeatureSpec,
    kinds: list[str],
    folds: int,
    seed: int,
    say: Callable[[str], None],
) -> tuple[dict[str, np.ndarray], dict[str, list[float]], float]:
    """Out-of-fold raw scores and per-fold AUCs of every candidate (logistic: best C)."""
    variants = [(k, c) for k in kinds for c in (LOGISTIC_CS if k == "logistic" else (0.0,))]
    oof = {v: np.empty(len(y)) for v in variants}
    aucs: dict[tuple[str, float], list[float]] = {v: [] for v in variants}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (fit_rows, val_rows) in enumerate(splitter.split(X, y), start=1):
        say(f"cross-validation fold {fold}/{folds}")
        for kind, c in variants:
            scorer = _fit(kind, X[fit_rows], y[fit_rows], spec, seed, c)
            raw = scorer.raw_frame(X[val_rows])
            oof[(kind, c)][val_rows] = raw
            aucs[(kind, c)].append(float(roc_auc_score(y[val_rows], raw)))
    best_c = LOGISTIC_CS[0]
    if "logistic" in kinds:
        best_c = max(LOGISTIC_CS, key=lambda c: float(np.mean(aucs[("logistic", c)])))
    pick = {k: (k, best_c if k == "logistic" else 0.0) for k in kinds}
    return (
        {k: oof[v] for k, v in pick.items()},
        {k: aucs[v] for k, v in pick.items()},
        best_c,
    )


def _grade_cutoffs(probability: np.ndarray, shares: Mapping[str, float]) -> dict[str, float]:
    """The lowest probability of each grade but D, so that grade shares match ``shares``."""
    cutoffs: dict[str, float] = {}
    above = 0.0
    for grade in GRADES[:-1]:
        above += shares[grade]
        cutoffs[grade] = float(np.quantile(probability, max(0.0, 1.0 - above)))
    return cutoffs


def _check_candidates(candidates: Collection[str]) -> list[str]:
    kinds = [k for k in CANDIDATES if k in candidates]
    unknown = sorted(set(candidates) - set(CANDIDATES))
    if unknown or not kinds:
        raise HistoryError(
            f"unknown candidates {', '.join(unknown) or '(none given)'}; "
            f"choose from {', '.join(CANDIDATES)}"
        )
    return kinds


def _check_shares(grade_shares: Mapping[str, float]) -> dict[str, float]:
    if set(grade_shares) != set(GRADES):
        raise HistoryError(f"grade shares must name exactly {', '.join(GRADES)}")
    shares = {g: float(grade_shares[g]) for g in GRADES}
    if any(not 0 < s < 1 for s in shares.values()) or abs(sum(shares.values()) - 1) > 1e-6:
        raise HistoryError("grade shares must each be between 0 and 1 and add up to 1")
    return shares


def _check_columns(frame: pd.DataFrame, target: str, id_column: str | None) -> None:
    names = [str(c) for c in frame.columns]
    for what, name in (("target", target), ("id", id_column)):
        if name is not None and name not in frame.columns:
            shown = ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
            raise HistoryError(f"unknown {what} column {name!r}; columns are: {shown}",
                               field=what)
    if id_column == target:
        raise HistoryError("the id column cannot be the target", field="id")


def _check_counts(n: int, positives: int, target: str) -> None:
    negatives = n - positives
    if positives < MIN_PER_CLASS:
        raise HistoryError(
            f"too few positives in {target!r}: {positives} of {n} rows converted "
            f"(need at least {MIN_PER_CLASS})", field="target",
        )
    if negatives < MIN_PER_CLASS:
        raise HistoryError(
            f"too few negatives in {target!r}: {negatives} of {n} rows did not convert "
            f"(need at least {MIN_PER_CLASS})", field="target",
        )


# --- evaluation and batch scoring -------------------------------------------------------------


def evaluate(model: ConversionModel, frame: pd.DataFrame, *, target: str) -> dict[str, Any]:
    """ROC AUC, PR AUC, lift by grade and a calibration table of ``model`` on ``frame``.

    ``frame`` should be data the model has not been trained on. Returns ``{"roc_auc",
    "pr_auc", "base_rate", "n", "positives", "lift": [...], "calibration": [...],
    "calibration_error"}``; AUCs are None when ``frame`` holds only one outcome.
    """
    _check_columns(frame, target, None)
    y = parse_target(frame[target]).astype(np.int64)
    return _evaluation(model, model.predict_frame(frame), y)


def _evaluation(model: ConversionModel, probability: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """The evaluation report of already-computed probabilities.

    1. AUCs only when both outcomes are present (otherwise they are undefined: None).
    2. Lift per grade: the grade's conversion rate over the base rate, in GRADES order.
    3. Calibration: ten bins of equal count by predicted probability, each with its mean
       prediction and observed rate; the count-weighted mean gap is the calibration error.
    """
    n = len(y)
    positives = int(y.sum())
    base_rate = positives / n if n else 0.0
    both = 0 < positives < n
    grades = model.grades(probability)
    lift = []
    for grade in GRADES:
        in_grade = grades == grade
        count = int(in_grade.sum())
        hits = int(y[in_grade].sum())
        rate = hits / count if count else None
        lift.append({
            "grade": grade, "n": count, "positives": hits, "rate": rate,
            "lift": rate / base_rate if rate is not None and base_rate > 0 else None,
        })
    calibration = []
    gap = 0.0
    order = np.argsort(probability, kind="stable")
    for k, rows in enumerate(np.array_split(order, min(10, n)) if n else [], start=1):
        if len(rows) == 0:
            continue
        predicted = float(probability[rows].mean())
        observed = float(y[rows].mean())
        gap += len(rows) * abs(predicted - observed)
        calibration.append({
            "bin": k, "n": len(rows), "low": float(probability[rows].min()),
            "high": float(probability[rows].max()), "mean_predicted": predicted,
            "observed": observed,
        })
    return {
        "roc_auc": float(roc_auc_score(y, probability)) if both else None,
        "pr_auc": float(average_precision_score(y, probability)) if both else None,
        "base_rate": base_rate,
        "mean_predicted": float(probability.mean()) if n else None,
        "n": n,
        "positives": positives,
        "lift": lift,
        "calibration": calibration,
        "calibration_error": gap / n if n else None,
    }


def score_frame(
    model: ConversionModel, frame: pd.DataFrame, *, id_column: str | None = None
) -> pd.DataFrame:
    """What ``predict`` writes: the id (or 1-based row number), probability, grade, percentile."""
    probability = model.predict_frame(frame)
    if id_column is not None:
        if id_column not in frame.columns:
            raise HistoryError(f"unknown id column {id_column!r}", field="id")
        ids = frame[id_column].to_numpy()
    else:
        id_column, ids = "row", np.arange(1, len(frame) + 1)
    return pd.DataFrame({
        id_column: ids,
        "probability": probability,
        "grade": model.grades(probability),
        "percentile": model.percentiles(probability),
    })
