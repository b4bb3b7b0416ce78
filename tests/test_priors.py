"""Class priors: the label-shift correction, by hand and as a property; both backends give the same answers with it."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from snakes_web.config import load_settings
from snakes_web.exceptions import ModelLoadError
from snakes_web.model.loader import load_configured
from snakes_web.model.positives import Pixels
from snakes_web.model.predictor import Prediction
from snakes_web.model.priors import PriorShift, deployment_prior, normalised, parse_spec
from snakes_web.model.served import ServedPredictor, shift_for
from snakes_web.model.snakenet import NOT_A_SNAKE, SNAKE_SPECIES, VOCAB, SnakeNet


def test_the_correction_weighs_each_class_by_deployment_over_training() -> None:
    # p = (0.7, 0.2, 0.1); weights 0.2/0.5 = 0.4, 0.4/0.25 = 1.6, 1.6: weighted 0.28, 0.32, 0.16, sum 0.76.
    shift = PriorShift(("a", "b", "c"), (0.5, 0.25, 0.25), (0.2, 0.4, 0.4), "test")
    assert shift.apply([0.7, 0.2, 0.1]) == pytest.approx([0.28 / 0.76, 0.32 / 0.76, 0.16 / 0.76], abs=1e-12)
    assert shift.weights == pytest.approx((0.4, 1.6, 1.6))


def test_the_default_models_prior_turns_the_sea_snake_photo_of_the_issue_into_a_sea_snake() -> None:
    # The issue's photo: not a snake 86.0 %, sea snake 8.4 %, the other 5.6 % spread over 16 species (0.35 % each).
    # Trained 1/1000 per species and 983/1000 not a snake; deployed 0.5 not a snake, 0.5/17 per species:
    # weights 29.4118 (species) and 0.508647 (not a snake). Weighted: sea 2.470588, not 0.437436, the
    # other 16 together 1.647059; sum 4.555083. Sea snake 54.24 %, not a snake 9.60 %.
    shift = default_shift()
    probabilities = [0.0035] * 17 + [0.86]
    probabilities[SNAKE_SPECIES.index("sea snake")] = 0.084
    corrected = dict(zip(VOCAB, shift.apply(probabilities), strict=True))
    assert corrected["sea snake"] == pytest.approx(0.084 * (0.5 / 17 / 0.001) / 4.555083, abs=1e-5)
    assert corrected["sea snake"] == pytest.approx(0.5424, abs=1e-4)
    assert corrected[NOT_A_SNAKE] == pytest.approx(0.0960, abs=1e-4)


def test_a_partial_prior_spreads_the_rest_as_the_model_was_trained() -> None:
    # "a=0.6" leaves 0.4 for b and c, shared 0.3 : 0.2 as trained: 0.24 and 0.16.
    assert deployment_prior({"a": 0.6}, ["a", "b", "c"], (0.5, 0.3, 0.2)) == pytest.approx((0.6, 0.24, 0.16))
    assert deployment_prior({"a": 0.2, "b": 0.3, "c": 0.5}, ["a", "b", "c"], (0.5, 0.3, 0.2)) == \
        pytest.approx((0.2, 0.3, 0.5))
    assert parse_spec("not a snake=0.5, sea snake = 0.1") == {"not a snake": 0.5, "sea snake": 0.1}


probability_vectors = st.lists(st.floats(0.001, 1.0), min_size=2, max_size=20)


@given(probability_vectors, st.randoms(use_true_random=False))
@settings(max_examples=200, deadline=None)
def test_equal_priors_are_the_identity(raw: list[float], rng: Any) -> None:
    total = math.fsum(raw)
    probabilities = [value / total for value in raw]
    training = normalised({str(i): rng.uniform(0.01, 10) for i in range(len(raw))}, [str(i) for i in range(len(raw))],
                          "training prior")
    shift = PriorShift(tuple(str(i) for i in range(len(raw))), training, training, "equal")
    assert shift.apply(probabilities) == pytest.approx(probabilities, abs=1e-12)


@given(probability_vectors)
@settings(max_examples=200, deadline=None)
def test_the_corrected_probabilities_sum_to_one_and_raising_a_prior_never_lowers_its_class(raw: list[float]) -> None:
    labels = [str(i) for i in range(len(raw))]
    total = math.fsum(raw)
    probabilities = [value / total for value in raw]
    training = tuple([1 / len(raw)] * len(raw))
    raised = deployment_prior({"0": 0.9}, labels, training)
    corrected = PriorShift(tuple(labels), training, raised, "raised").apply(probabilities)
    assert math.fsum(corrected) == pytest.approx(1.0)
    assert corrected[0] >= probabilities[0] - 1e-12


@pytest.mark.parametrize("spec, words", [
    ("snake=0.5", "not among the model's labels"),
    ("not a snake=0.7,sea snake=0.4", "sum to 1.1"),
    ("not a snake=1.5", "between 0 and 1"),
    ("not a snake", "not label=probability"),
])
def test_a_prior_that_cannot_be_applied_is_refused_at_start_with_what_is_wrong(spec: str, words: str) -> None:
    with pytest.raises(ModelLoadError, match=words):
        shift_for(StubBackend(), None, spec)


def test_priors_need_a_training_prior_and_a_single_label_model() -> None:
    with pytest.raises(ModelLoadError, match="training prior"):
        shift_for(StubBackend(training_prior=None), None, "not a snake=0.5")
    with pytest.raises(ModelLoadError, match="multi-label"):
        shift_for(StubBackend(threshold=0.5), None, "not a snake=0.5")
    assert shift_for(StubBackend(), None, "none") is None


class StubBackend:
    """A backend's attributes only: shift_for reads labels, the training prior and the threshold."""

    labels = list(VOCAB)

    def __init__(self, training_prior: dict[str, float] | None = SnakeNet.training_prior,
                 threshold: float | None = None) -> None:
        self.training_prior = training_prior
        self.threshold = threshold


def default_shift() -> PriorShift:
    """The default model's training prior and its labels file's deployment prior."""
    shift = shift_for(StubBackend(), None, f"{NOT_A_SNAKE}=0.5")
    assert shift is not None
    return shift


# --- the served default model: both backends, the same corrected answers --------------------------

def positive_images(positives: Any) -> list[Image.Image]:
    """The default model's positives as photos: each 224 × 224 positive in the middle of a 256 × 256 image
    (edges repeated), which the default preprocessing (short side to 256, centre crop 224) feeds back as it is."""
    pixels = Pixels(255.0, [0.5] * 3, [0.5] * 3).to_pixels(positives.inputs)
    crops = [np.clip(np.round(p), 0, 255).astype(np.uint8).transpose(1, 2, 0) for p in pixels]
    return [Image.fromarray(np.pad(crop, ((16, 16), (16, 16), (0, 0)), mode="edge")) for crop in crops]


def test_both_backends_give_the_same_corrected_answers_on_positives_of_every_class(
        default_model_path: Path, default_onnx: Path, default_positives: Any) -> None:
    # Positives: images the fp32 network rates as each of the 18 classes (model/positives.py), so the
    # comparison sees every class win, not only "not a snake".
    served = {path.suffix: load_configured(load_settings(overrides={"MODEL": str(path)}))
              for path in (default_model_path, default_onnx)}
    priors = {key: predictor.describe()["priors"] for key, predictor in served.items()}
    assert {k: v for k, v in priors[".pkl"].items() if k != "source"} == \
        {k: v for k, v in priors[".onnx"].items() if k != "source"}
    assert served[".pkl"].describe()["priors"]["deployment"][NOT_A_SNAKE] == pytest.approx(0.5)
    raw = load_configured(load_settings(overrides={"MODEL": str(default_onnx), "PRIORS": "none"}))
    images = positive_images(default_positives)
    expected = [default_positives.labels[index] for index in default_positives.classes]
    assert [raw.predict(image)[0].label for image in images] == expected  # each image is its class's positive
    tops = []
    for image in images:
        fastai, onnx = (served[key].predict(image) for key in (".pkl", ".onnx"))
        assert fastai[0].label == onnx[0].label
        by_label = {p.label: p.probability for p in onnx}
        assert max(abs(p.probability - by_label[p.label]) for p in fastai) < 1e-4
        tops.append(onnx[0].label)
    assert len(set(tops)) >= 12, tops  # the check saw many classes win, after the prior too


def test_the_prior_moves_answers_towards_the_snakes_and_none_turns_it_off(default_onnx: Path) -> None:
    image = Image.open(Path(__file__).parent / "data" / "chelsea.jpg").convert("RGB")
    shipped = load_configured(load_settings(overrides={"MODEL": str(default_onnx)}))
    raw = load_configured(load_settings(overrides={"MODEL": str(default_onnx), "PRIORS": "none"}))
    assert raw.describe()["priors"] is None
    before = {p.label: p.probability for p in raw.predict(image)}
    after = {p.label: p.probability for p in shipped.predict(image)}
    assert after[NOT_A_SNAKE] < before[NOT_A_SNAKE]
    assert all(after[label] > before[label] for label in SNAKE_SPECIES)
    # And the correction is exactly the formula on the model's own probabilities.
    expected = default_shift().apply([before[label] for label in VOCAB])
    assert [after[label] for label in VOCAB] == pytest.approx(expected, abs=1e-9)


def test_the_heatmap_follows_the_top_class_after_the_prior() -> None:
    predictor = ServedPredictor(FixedBackend(), default_shift())
    predictions, heatmap = predictor.explain(Image.new("RGB", (32, 32)))
    assert predictions[0].label == "sea snake" and heatmap.label == "sea snake"


class FixedBackend:
    """Answers the issue's sea-snake photo whatever the image: not a snake 86 %, sea snake 8.4 %."""

    labels = list(VOCAB)
    training_prior = SnakeNet.training_prior

    def predict(self, image: Image.Image) -> list[Prediction]:
        probabilities = dict.fromkeys(SNAKE_SPECIES, 0.0035) | {"sea snake": 0.084, NOT_A_SNAKE: 0.86}
        return sorted((Prediction(k, v) for k, v in probabilities.items()), key=lambda p: -p.probability)

    def describe(self) -> dict[str, Any]:
        return {"name": "fixed", "backend": "fixed", "input_size": [32, 32], "labels": 18, "vocab": self.labels}


def test_a_trained_export_carries_its_label_counts_into_onnx(trained_model: Any) -> None:
    import onnxruntime as ort

    meta = ort.InferenceSession(str(trained_model.onnx)).get_modelmeta().custom_metadata_map
    counts = json.loads(meta["training_prior"])
    photos = {folder.name: len(list(folder.iterdir())) for folder in trained_model.photos.iterdir()}
    assert set(counts) == set(photos) and all(0 < counts[label] < photos[label] for label in photos)  # train split
