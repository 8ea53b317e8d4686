"""The learned conversion model, on generated histories whose true drivers are planted."""

from __future__ import annotations

import functools
import json
import math
import os
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from leadflow.scoring.history import planted_history
from leadflow.scoring.learning import (
    BLOB_FORMAT,
    BLOB_VERSION,
    CANDIDATES,
    DEFAULT_GRADE_SHARES,
    GRADES,
    ColumnKind,
    ConversionModel,
    FeatureSpec,
    HistoryError,
    ModelError,
    TrainResult,
    _Trees,
    evaluate,
    infer_spec,
    parse_target,
    read_history,
    score_frame,
    train,
)

# A lead who paid for a consultation after three community classes, otherwise ordinary.
CONSULTED = {
    "lead_id": "X1", "industry": "制造", "headcount": "30", "province": "广东", "title": "经理",
    "channel": "seo", "product_interest": "CRM", "community_classes": 3, "webinar_attended": 0,
    "email_clicks": 1, "paid_consultation": 1, "signup_weekday": "周二", "form_version": "A",
    "signup_hour": 10,
}


@pytest.fixture(scope="module")
def leads() -> tuple[pd.DataFrame, object]:
    return planted_history(12_000, seed=3)


@pytest.fixture(scope="module")
def leads_result(leads: tuple[pd.DataFrame, object]) -> TrainResult:
    frame, _ = leads
    return train(frame, target="converted", id_column="lead_id", seed=0)


@pytest.fixture(scope="module")
def saas_result(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """Trained from a GB18030 CSV, as a Chinese spreadsheet export would arrive."""
    frame, _ = planted_history(4_000, seed=5, schema="saas")
    path = tmp_path_factory.mktemp("history") / "accounts.csv"
    path.write_bytes(frame.to_csv(index=False).encode("gb18030"))
    return train(read_history(path), target="won", id_column="account_id")


@pytest.fixture(scope="module", params=CANDIDATES)
def kind_model(request: pytest.FixtureRequest, leads: tuple[pd.DataFrame, object]) -> ConversionModel:
    frame, _ = leads
    result = train(frame.iloc[:5_000], target="converted", id_column="lead_id",
                   candidates=(request.param,))
    assert result.kind == request.param
    return result.model()


def _probe_rows(n: int) -> list[dict[str, object]]:
    """Fresh leads, some as CSV text, with unseen values, junk and missing keys mixed in."""
    frame, _ = planted_history(n, seed=99)
    rows = frame.drop(columns=["converted"]).to_dict("records")
    rng = np.random.default_rng(1)
    for i, row in enumerate(rows):
        if i % 4 == 0:
            row.update({k: "" if isinstance(v, float) and math.isnan(v) else str(v)
                        for k, v in row.items()})
        if i % 7 == 0:
            row["industry"] = "航天"  # never seen in training
        if i % 11 == 0:
            row.pop(str(rng.choice(["headcount", "title", "channel"])))
        if i % 13 == 0:
            row["headcount"] = " 1,200 "
        if i % 17 == 0:
            row["email_clicks"] = "n/a"
        if i % 19 == 0:
            row["community_classes"] = None
    return rows


def test_trains_on_two_different_schemas(leads_result: TrainResult, saas_result: TrainResult) -> None:
    for result in (leads_result, saas_result):
        assert result.kind in CANDIDATES
        assert set(result.metrics["candidates"]) == set(CANDIDATES)
        for report in result.metrics["candidates"].values():
            assert 0.5 < report["cv_auc"] < 1 and 0.5 < report["holdout_auc"] < 1
        assert len(result.metrics["probability_quantiles"]) == 101
        assert result.metrics["n_train"] + result.metrics["n_holdout"] == result.metrics["n_rows"]
        json.dumps(result.metrics)  # storable as is
    assert "wechat_openid" in leads_result.metrics["dropped_columns"]
    assert "lead_id" not in leads_result.metrics["features"]
    assert {"plan", "seats", "trial_days_active"} <= set(saas_result.metrics["features"])
    assert saas_result.spec.columns[saas_result.metrics["features"].index("seats")].kind is ColumnKind.NUMERIC


def test_chosen_model_is_near_the_best_and_beats_frequency(leads_result: TrainResult) -> None:
    candidates = leads_result.metrics["candidates"]
    chosen_auc = leads_result.metrics["holdout"]["roc_auc"]
    best = max(c["holdout_auc"] for c in candidates.values())
    assert chosen_auc >= best - 0.02
    assert chosen_auc > candidates["frequency"]["holdout_auc"]


def test_holdout_probabilities_are_calibrated(leads_result: TrainResult, saas_result: TrainResult) -> None:
    for result in (leads_result, saas_result):
        holdout = result.metrics["holdout"]
        assert abs(holdout["mean_predicted"] - holdout["base_rate"]) < 0.02
        assert holdout["calibration_error"] < 0.04
        assert sum(b["n"] for b in holdout["calibration"]) == holdout["n"]


def test_grades_separate_and_follow_their_shares(leads_result: TrainResult) -> None:
    holdout = leads_result.metrics["holdout"]
    lift = {row["grade"]: row for row in holdout["lift"]}
    assert [row["grade"] for row in holdout["lift"]] == list(GRADES)
    assert lift["A"]["lift"] > 2 * lift["C"]["lift"]
    assert lift["A+"]["rate"] > lift["A"]["rate"] > lift["B"]["rate"] > lift["C"]["rate"] > lift["D"]["rate"]
    for grade, share in DEFAULT_GRADE_SHARES.items():
        assert abs(lift[grade]["n"] / holdout["n"] - share) < 0.04


def test_predict_row_equals_predict_frame(kind_model: ConversionModel) -> None:
    rows = _probe_rows(400)
    by_frame = kind_model.predict_frame(pd.DataFrame(rows))
    by_row = np.array([kind_model.predict_row(row) for row in rows])
    assert np.all((by_frame > 0) & (by_frame < 1))
    np.testing.assert_allclose(by_row, by_frame, rtol=0, atol=1e-9)


def test_tree_fast_paths_agree_with_scikit_learn(leads_result: TrainResult) -> None:
    """Both tree evaluators read scikit-learn internals; this catches them drifting."""
    model = leads_result.model()
    assert model.kind == "gbt"
    scorer = model._scorer
    assert isinstance(scorer, _Trees) and scorer.fast
    X = model.spec.encode_frame(pd.DataFrame(_probe_rows(2_000)))
    reference = scorer.estimator.decision_function(X)
    np.testing.assert_allclose(scorer.raw_frame(X), reference, rtol=0, atol=1e-9)
    walked = [scorer.raw_values(row) for row in X[:300].tolist()]
    np.testing.assert_allclose(walked, reference[:300], rtol=0, atol=1e-9)


def test_explanations_name_the_planted_drivers(kind_model: ConversionModel) -> None:
    top = kind_model.explain_row(CONSULTED, top=4)
    named = [c.feature for c in top]
    assert {"paid_consultation", "community_classes"} <= set(named)
    assert all(c.effect > 0 for c in top if c.feature in ("paid_consultation", "community_classes"))
    assert [abs(c.effect) for c in top] == sorted((abs(c.effect) for c in top), reverse=True)
    assert "raises the odds" in next(c for c in top if c.feature == "paid_consultation").words


def test_contributions_add_up_to_the_raw_score(kind_model: ConversionModel) -> None:
    """Effects are exact shares of the raw score: their sum differs from it by a constant."""
    offsets = []
    for row in _probe_rows(60):
        effects = kind_model.explain_row(row, top=100)
        raw = kind_model._scorer.raw_values(kind_model.spec.encode_values(row))
        offsets.append(raw - sum(c.effect for c in effects))
    assert max(offsets) - min(offsets) < 1e-9


def test_gift_channel_lowers_the_odds(kind_model: ConversionModel) -> None:
    gift = dict(CONSULTED, channel="gift", paid_consultation=0, community_classes=0)
    everything = kind_model.explain_row(gift, top=50)
    channel = next(c for c in everything if c.feature == "channel")
    assert channel.value == "gift" and channel.effect < -0.5
    assert kind_model.predict_row(gift) < kind_model.predict_row(dict(gift, channel="referral"))


def test_parse_target_reads_common_spellings() -> None:
    values = pd.Series(["1", "0", "Yes", "no", "TRUE", "false", "won", "Lost", "是", "否", "成交", "未成交",
                        " converted ", "not converted", 1, 0, 1.0, True])
    assert parse_target(values).tolist() == [1, 0] * 6 + [1, 0, 1, 0, 1, 1]


def test_parse_target_names_the_bad_row() -> None:
    with pytest.raises(HistoryError, match=r"row 4: .*'maybe'"):
        parse_target(pd.Series(["1", "0", "maybe", "1"], name="converted"))
    with pytest.raises(HistoryError, match=r"row 3: .*blank"):
        parse_target(pd.Series(["1", None, "0"], name="converted"))


def test_training_rejects_bad_histories(leads: tuple[pd.DataFrame, object]) -> None:
    frame, _ = leads
    with pytest.raises(HistoryError, match="unknown target column 'convertd'"):
        train(frame, target="convertd")
    few = frame.iloc[:2_000].copy()
    few["converted"] = 0
    few.loc[few.index[:7], "converted"] = 1
    with pytest.raises(HistoryError, match=r"too few positives.*7 of 2000"):
        train(few, target="converted")
    only_ids = frame[["lead_id", "wechat_openid", "converted"]]
    with pytest.raises(HistoryError, match=r"no usable feature columns.*identifier-like"):
        train(only_ids, target="converted")


def test_infer_spec_keeps_features_and_drops_identifiers() -> None:
    n = 400
    rng = np.random.default_rng(0)
    revenue = rng.integers(1, 50, n).astype(object)
    revenue[:10] = "n/a"  # 2.5% junk: still numeric
    frame = pd.DataFrame({
        "email": [f"user{i}@example.cn" for i in range(n)],
        "crm_key": np.arange(10_000, 10_000 + n),
        "country": ["CN"] * n,
        "empty": [None] * n,
        "revenue": revenue,
        "city": rng.choice(["北京", "上海", "深圳", " 北京 "], n).tolist()[:-5] + ["拉萨"] * 5,
        "outcome": rng.integers(0, 2, n),
    })
    spec = infer_spec(frame, exclude={"outcome"}, min_count=10)
    assert spec.names == ["revenue", "city"]
    assert set(spec.dropped) == {"email", "crm_key", "country", "empty"}
    assert "identifier-like" in spec.dropped["email"] and "identifier-like" in spec.dropped["crm_key"]
    city = spec.columns[1]
    assert city.kind is ColumnKind.CATEGORICAL
    assert sorted(city.categories) == ["上海", "北京", "深圳"]  # " 北京 " merged, 拉萨 too rare
    encoded = spec.encode_frame(frame)
    assert np.isnan(encoded[:10, 0]).all() and not np.isnan(encoded[10:, 0]).any()
    assert (encoded[-5:, 1] == city.other_code).all()


def test_feature_spec_survives_json(saas_result: TrainResult) -> None:
    spec = saas_result.spec
    again = FeatureSpec.from_json(json.loads(json.dumps(spec.to_json(), ensure_ascii=False)))
    assert again == spec
    frame, _ = planted_history(300, seed=8, schema="saas")
    np.testing.assert_array_equal(again.encode_frame(frame), spec.encode_frame(frame))
    for row in frame.head(50).to_dict("records"):
        np.testing.assert_array_equal(again.encode_row(row), spec.encode_frame(pd.DataFrame([row])))


def test_stored_model_predicts_like_the_trained_one(saas_result: TrainResult) -> None:
    stored = json.loads(json.dumps({"spec": saas_result.spec.to_json(), "metrics": saas_result.metrics}))
    model = ConversionModel.load(kind=saas_result.kind, spec=stored["spec"], blob=saas_result.blob,
                                 metrics=stored["metrics"])
    frame, _ = planted_history(500, seed=6, schema="saas")
    np.testing.assert_array_equal(model.predict_frame(frame), saas_result.model().predict_frame(frame))
    report = evaluate(model, frame, target="won")
    assert report["n"] == 500 and 0.6 < report["roc_auc"] < 1
    assert [row["grade"] for row in report["lift"]] == list(GRADES)


class Sneaky:
    """Stands in for anything a tampered blob could smuggle in."""

    def __init__(self) -> None:
        self.command = "rm -rf /"


def test_load_refuses_untrusted_types(leads_result: TrainResult) -> None:
    spec = leads_result.spec.to_json()
    tampered = sio.dumps({"format": BLOB_FORMAT, "version": BLOB_VERSION, "kind": "gbt",
                          "estimator": Sneaky(), "calibration": "{}"})
    with pytest.raises(ModelError, match=r"untrusted types: .*Sneaky"):
        ConversionModel.load(kind="gbt", spec=spec, blob=tampered, metrics=leads_result.metrics)
    # functools.partial is trusted (scikit-learn wraps check_array in one), not what it wraps.
    wrapped = sio.dumps({"format": BLOB_FORMAT, "version": BLOB_VERSION, "kind": "gbt",
                         "estimator": functools.partial(os.system, "echo pwned"), "calibration": "{}"})
    with pytest.raises(ModelError, match=r"untrusted types: .*system"):
        ConversionModel.load(kind="gbt", spec=spec, blob=wrapped, metrics=leads_result.metrics)
    with pytest.raises(ModelError, match="not a skops file"):
        ConversionModel.load(kind="gbt", spec=spec, blob=pickle.dumps(Sneaky()), metrics=leads_result.metrics)
    with pytest.raises(ModelError, match="not JSON"):
        ConversionModel.load(kind="logistic", spec=spec, blob=pickle.dumps({}), metrics=leads_result.metrics)


def test_missing_columns_and_unseen_categories_are_scored(leads_result: TrainResult) -> None:
    model = leads_result.model()
    frame, _ = planted_history(300, seed=12)
    without = model.predict_frame(frame.drop(columns=["industry", "headcount"]))
    blanked = model.predict_frame(frame.assign(industry=np.nan, headcount=np.nan))
    np.testing.assert_array_equal(without, blanked)
    unseen = model.predict_frame(frame.assign(industry="航天"))
    other = model.predict_frame(frame.assign(industry="另一个没见过的行业"))
    np.testing.assert_array_equal(unseen, other)
    assert np.isfinite(without).all() and np.isfinite(unseen).all()
    assert model.predict_row({}) == pytest.approx(float(model.predict_frame(pd.DataFrame(index=[0]))[0]), abs=1e-12)


def test_grades_and_percentiles_agree_scalar_and_vectorised(leads_result: TrainResult) -> None:
    model = leads_result.model()
    probabilities = np.concatenate([np.linspace(0, 1, 201), model.metrics["probability_quantiles"],
                                    list(model.metrics["grade_cutoffs"].values())])
    assert model.grades(probabilities).tolist() == [model.grade_for(p) for p in probabilities]
    vector = model.percentiles(probabilities)
    np.testing.assert_allclose(vector, [model.percentile(p) for p in probabilities], atol=1e-12)
    ordered = np.sort(probabilities)
    assert np.all(np.diff(model.percentiles(ordered)) >= 0)
    assert model.percentile(0.0) == 0 and model.percentile(1.0) == 100
    assert model.grade_for(model.metrics["grade_cutoffs"]["A+"]) == "A+"


def test_score_frame_writes_id_probability_grade(saas_result: TrainResult, tmp_path: Path) -> None:
    frame, _ = planted_history(200, seed=4, schema="saas")
    path = tmp_path / "accounts.csv"
    path.write_text(frame.drop(columns=["won"]).to_csv(index=False), encoding="utf-8-sig")
    scored = score_frame(saas_result.model(), read_history(path), id_column="account_id")
    assert list(scored.columns) == ["account_id", "probability", "grade", "percentile"]
    assert scored["account_id"].tolist() == frame["account_id"].tolist()
    assert set(scored["grade"]) <= set(GRADES)
