"""Churn warning (离网预警): who is about to close their line or port their number out. Pure, no Django.

A model learns from an earlier snapshot's features who, among the subscribers active then, left within the churn
window after it; it then scores the current snapshot into deciles (`churn_risk`). Two learners are fitted on the same
rows, logistic regression and gradient boosting, and the one with the better AUC on the held-out subscribers is kept
(gradient boosting only where it beats the simpler model). Its drivers are permutation importances on the held-out
rows, named in the feature catalogue's words; each scored subscriber gets their top reasons: the inputs where they
stand furthest on the risky side, weighted by how much the model relies on them (the reason codes of credit
scoring).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.inspection import permutation_importance
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from .propensity import CIRCLE_INPUTS, INPUTS, top_decile_lift

# (input, SQL over feature columns, the features it needs): what leaving shows before it happens. The first feature
# named is the one a driver is called by.
CHURN_INPUTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("port_out_queries", "coalesce(port_out_queries, 0)", ("port_out_queries",)),
    ("days_since_port_out_query", "coalesce(days_since_port_out_query, 99)", ("days_since_port_out_query",)),
    ("voice_trend", "ln(greatest(coalesce(voice_trend, 1), 0.01))", ("voice_trend",)),
    ("data_trend", "ln(greatest(coalesce(data_trend, 1), 0.01))", ("data_trend",)),
    ("charge_trend", "ln(greatest(coalesce(charge_trend, 1), 0.01))", ("charge_trend",)),
    ("voice_last_week", "ln(greatest(coalesce(voice_last_week_ratio, 1), 0.01))", ("voice_last_week_ratio",)),
    ("data_last_week", "ln(greatest(coalesce(data_last_week_ratio, 1), 0.01))", ("data_last_week_ratio",)),
    ("days_since_last_use", "least(coalesce(days_since_last_use, 0), 60)", ("days_since_last_use",)),
    # Of the churn window's days, the share still bound by a commitment (合约期内) and the share in the three months
    # after it ends (free, and courted by the competitors): {window} is the churn window in days.
    ("commitment_bound_share", "coalesce(least(greatest(commitment_days_left - 1, 0), {window}) / {window}, 0)",
     ("commitment_days_left",)),
    ("commitment_freed_share", "coalesce(greatest(least(commitment_days_left + 90, {window} + 1) "
                               "- greatest(commitment_days_left, 1), 0) / {window}, 0)", ("commitment_days_left",)),
    ("handset_years", "least(coalesce(handset_days, 0), 3650) / 365", ("handset_days",)),
    ("offnet_share", "coalesce(offnet_call_share, 0)", ("offnet_call_share",)),
]
LEARNERS = ("logistic", "gradient_boosting")


def available_inputs(columns: set[str], window_days: int) -> list[tuple[str, str, str]]:
    """(input, SQL, the feature it is named by) for the inputs whose features the snapshot has."""
    every = CHURN_INPUTS + [i for i in INPUTS + CIRCLE_INPUTS if i[0] not in {"video_days", "short_video_days", "game_days"}]
    return [(name, sql.replace("{window}", str(window_days)), needs[0]) for name, sql, needs in every if set(needs) <= columns]


@dataclass(frozen=True)
class ChurnFit:
    learner: str  # the learner kept
    inputs: list[str]
    input_sql: list[str]
    features: list[str]  # the catalogue feature each input is named by
    auc: dict  # learner -> held-out AUC
    top_decile_lift: float | None  # the kept learner's, held out
    cutpoints: list[float]  # 9 probabilities splitting the training population into deciles
    mean: list[float]
    scale: list[float]
    direction: list[float]  # +1 where a higher input goes with higher risk, -1 where lower does
    importance: list[float]  # permutation importance (drop in held-out AUC), 0 where negative
    decile_profile: dict = field(default_factory=dict)  # decile -> each input's mean in it, standardised

    def as_dict(self) -> dict:
        return asdict(self)


def fit(values: np.ndarray, labels: np.ndarray, held_out: np.ndarray, *, inputs: list[tuple[str, str, str]],
        seed: int) -> tuple[ChurnFit, object]:
    """Fit both learners on the rows not held out, keep the better on the held-out rows; return the fit and the
    estimator (a scikit-learn classifier over the standardised inputs)."""
    labels, held_out = np.asarray(labels, dtype=bool), np.asarray(held_out, dtype=bool)
    mean = values.mean(axis=0)
    scale = values.std(axis=0)
    scale[scale == 0] = 1.0
    x = (values - mean) / scale
    train = ~held_out
    learners = {
        "logistic": LogisticRegression(C=1.0, max_iter=2000, random_state=seed),
        "gradient_boosting": HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                                            min_samples_leaf=100, l2_regularization=1.0, random_state=seed),
    }
    auc = {}
    for name, learner in learners.items():
        learner.fit(x[train], labels[train])
        auc[name] = float(roc_auc_score(labels[held_out], learner.predict_proba(x[held_out])[:, 1]))
    kept = "gradient_boosting" if auc["gradient_boosting"] > auc["logistic"] else "logistic"
    model = learners[kept]
    probability = model.predict_proba(x)[:, 1]
    importance = permutation_importance(model, x[held_out], labels[held_out], scoring="roc_auc", n_repeats=3,
                                        random_state=seed).importances_mean
    # The direction of each input: how the predicted risk moves with it across the population.
    direction = np.sign([np.corrcoef(x[:, j], probability)[0, 1] if x[:, j].std() > 0 else 0.0 for j in range(x.shape[1])])
    cutpoints = np.quantile(probability, np.linspace(0.1, 0.9, 9))
    deciles = decile_of(probability, cutpoints)
    profile = {int(d): np.round(x[deciles == d].mean(axis=0), 3).tolist() for d in range(1, 11) if (deciles == d).any()}
    return ChurnFit(
        learner=kept, inputs=[name for name, _, _ in inputs], input_sql=[sql for _, sql, _ in inputs],
        features=[feature for _, _, feature in inputs], auc={k: round(v, 4) for k, v in auc.items()},
        top_decile_lift=top_decile_lift(probability[held_out], labels[held_out]), cutpoints=cutpoints.tolist(),
        mean=mean.tolist(), scale=scale.tolist(), direction=np.where(direction == 0, 1.0, direction).tolist(),
        importance=np.maximum(importance, 0).round(5).tolist(), decile_profile=profile,
    ), model


def decile_of(probability: np.ndarray, cutpoints: list[float] | np.ndarray) -> np.ndarray:
    """1 (least likely to leave) to 10 (most likely), by the training population's cut points."""
    return (1 + np.searchsorted(np.asarray(cutpoints), probability, side="left")).astype(np.uint8)


def score(model, fitted: dict, values: np.ndarray, reasons: int = 3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row: the probability of leaving, its decile, and the indexes of its top `reasons` inputs (-1 where fewer
    inputs stand on the risky side)."""
    x = (values - np.asarray(fitted["mean"])) / np.asarray(fitted["scale"])
    probability = model.predict_proba(x)[:, 1]
    pull = np.maximum(x * np.asarray(fitted["direction"]), 0) * np.asarray(fitted["importance"])
    top = np.argsort(-pull, axis=1, kind="stable")[:, :reasons]
    strength = np.take_along_axis(pull, top, axis=1)
    return probability, decile_of(probability, fitted["cutpoints"]), np.where(strength > 0, top, -1)
