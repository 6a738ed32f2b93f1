"""Propensity models (产品办理倾向): logistic regression on snapshot features, scored as deciles. Pure.

A model learns, from an earlier snapshot's features, who took up a product in the days up to the
current snapshot (among those who did not hold it then); it then scores the current snapshot. Inputs
are features transformed in SQL (logs of heavy-tailed amounts, booleans as 0/1), so that scoring a
partition is one DuckDB expression; the fitted standardisation, coefficients and decile cut points are
kept as plain numbers, pinned into the run and stored with the model.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

# (input name, SQL over feature columns, the features it needs). Each latent trait the operator cannot
# see (value, youth, data and SMS appetite, travel, a 5G handset) shows in some of these.
INPUTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("log_arpu", "ln(1 + greatest(coalesce(arpu_30d, 0), 0))", ("arpu_30d",)),
    ("log_plan_fee", "ln(1 + greatest(coalesce(plan_fee, 0), 0))", ("plan_fee",)),
    ("premium_brand", "coalesce(brand = '全球通', false)::INTEGER", ("brand",)),
    ("log_data", "ln(1 + greatest(coalesce(data_mb_30d, 0), 0))", ("data_mb_30d",)),
    ("log_sms", "ln(1 + greatest(coalesce(sms_30d, 0), 0))", ("sms_30d",)),
    ("log_voice", "ln(1 + greatest(coalesce(voice_minutes_30d, 0), 0))", ("voice_minutes_30d",)),
    ("roaming_days", "coalesce(roaming_days, 0)", ("roaming_days",)),
    ("age", "coalesce(age, 40)", ("age",)),
    ("log_tenure", "ln(1 + greatest(coalesce(tenure_months, 0), 0))", ("tenure_months",)),
    ("night_share", "coalesce(night_call_share, 0)", ("night_call_share",)),
    ("competitor_share", "coalesce(competitor_call_share, 0)", ("competitor_call_share",)),
    ("active_share", "coalesce(active_day_share, 0)", ("active_day_share",)),
    ("products_held", "coalesce(products_held, 0)", ("products_held",)),
    ("five_g_handset", "coalesce(has_5g_handset, false)::INTEGER", ("has_5g_handset",)),
    ("log_handset_price", "ln(1 + greatest(coalesce(handset_price, 0), 0))", ("handset_price",)),
    ("handset_changes", "coalesce(handset_changes_12m, 0)", ("handset_changes_12m",)),
    # What they do online: interests sell content and directional packs.
    ("video_days", "coalesce(video_day_share, 0)", ("video_day_share",)),
    ("short_video_days", "coalesce(short_video_day_share, 0)", ("short_video_day_share",)),
    ("game_days", "coalesce(game_day_share, 0)", ("game_day_share",)),
    ("log_app_data", "ln(1 + greatest(coalesce(app_mb_30d, 0), 0))", ("app_mb_30d",)),
]
# Whom they call: the circle (its size, its network, its place in the graph) and, per product, the share of the close
# circle holding it (circle_<product>, graded 1-10; 0 without a close on-net circle): the network effect.
CIRCLE_INPUTS: list[tuple[str, str, tuple[str, ...]]] = [
    ("log_circle_size", "ln(1 + coalesce(circle_size, 0))", ("circle_size",)),
    ("circle_offnet_share", "coalesce(close_circle_offnet_share, 0)", ("close_circle_offnet_share",)),
    ("centrality", "coalesce(centrality_percentile, 0) / 100", ("centrality_percentile",)),
    ("household_size", "coalesce(household_size, 1)", ("household_size",)),
]


def available_inputs(columns: set[str], *, circle_grades: list[str] = (), circles: bool = True) -> list[tuple[str, str]]:
    """The inputs whose features the snapshot has (a city without handsets has no terminal columns); with circles,
    the call-circle inputs and the products' circle grades (`circle_grades`, the feature names) too. Without them:
    what the models knew before call records, for comparison."""
    inputs = [(name, sql) for name, sql, needs in INPUTS if set(needs) <= columns]
    if circles:
        inputs += [(name, sql) for name, sql, needs in CIRCLE_INPUTS if set(needs) <= columns]
        inputs += [(grade, f"coalesce({grade}, 0)") for grade in circle_grades if grade in columns]
    return inputs


@dataclass(frozen=True)
class FittedModel:
    inputs: list[str]
    input_sql: list[str]
    mean: list[float]
    scale: list[float]
    coefficients: list[float]
    intercept: float
    cutpoints: list[float]  # 9 scores splitting the training population into deciles
    training_rows: int
    positives: int
    auc: float | None  # on the held-out part of the training population
    top_decile_lift: float | None  # positives' rate in the held-out top decile / the held-out rate
    # Per decile 1..10, the training population's take-up rate over the model's horizon: the decile's probability,
    # what an expected value (next best offer) is made of.
    decile_rates: list[float | None] = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    def scoring(self) -> dict:
        """What decile_sql() needs, pinned into the run for its partitions."""
        return {key: getattr(self, key) for key in ("input_sql", "mean", "scale", "coefficients", "intercept", "cutpoints")}


def fit(values: np.ndarray, labels: np.ndarray, held_out: np.ndarray, *, inputs: list[tuple[str, str]],
        seed: int) -> FittedModel:
    """Fit on the rows not held out; measure AUC and top-decile lift on the held-out rows."""
    labels, held_out = np.asarray(labels, dtype=bool), np.asarray(held_out, dtype=bool)
    mean = values.mean(axis=0)
    scale = values.std(axis=0)
    scale[scale == 0] = 1.0
    standardised = (values - mean) / scale
    train = ~held_out
    model = LogisticRegression(C=1.0, max_iter=1000, random_state=seed).fit(standardised[train], labels[train])
    scores = standardised @ model.coef_[0] + model.intercept_[0]
    auc = lift = None
    test_labels = labels[held_out]
    if test_labels.any() and not test_labels.all():
        auc = float(roc_auc_score(test_labels, scores[held_out]))
        lift = top_decile_lift(scores[held_out], test_labels)
    return FittedModel(
        inputs=[name for name, _ in inputs], input_sql=[sql for _, sql in inputs], mean=mean.tolist(),
        scale=scale.tolist(), coefficients=model.coef_[0].tolist(), intercept=float(model.intercept_[0]),
        cutpoints=(cutpoints := np.quantile(scores, np.linspace(0.1, 0.9, 9))).tolist(), training_rows=int(len(labels)),
        positives=int(labels.sum()), auc=auc, top_decile_lift=lift, decile_rates=decile_rates(scores, labels, cutpoints),
    )


def decile_rates(scores: np.ndarray, labels: np.ndarray, cutpoints: np.ndarray) -> list[float | None]:
    """The share of positives in each decile the cut points make, 1 (lowest) to 10."""
    deciles = 1 + (scores[:, None] > np.asarray(cutpoints)[None, :]).sum(axis=1)
    return [float(labels[deciles == d].mean()) if (deciles == d).any() else None for d in range(1, 11)]


def top_decile_lift(scores: np.ndarray, outcome: np.ndarray) -> float | None:
    """Mean outcome (a 0/1 label or a probability) of the top-scoring tenth over the overall mean."""
    outcome = np.asarray(outcome, dtype=float)
    if len(outcome) < 10 or outcome.mean() == 0:
        return None
    top = np.argsort(-np.asarray(scores), kind="stable")[: max(1, len(outcome) // 10)]
    return float(outcome[top].mean() / outcome.mean())


def decile_sql(model: dict) -> str:
    """SQL giving each row its decile, 1 (lowest) to 10, by the training population's cut points."""
    terms = " + ".join(f"({coefficient!r}) * (({sql}) - ({mean!r})) / ({scale!r})"
                       for sql, mean, scale, coefficient in zip(model["input_sql"], model["mean"], model["scale"],
                                                               model["coefficients"]))
    score = f"({model['intercept']!r} + {terms})"
    return "(1 + " + " + ".join(f"({score} > {cut!r})::INTEGER" for cut in model["cutpoints"]) + ")::UTINYINT"
