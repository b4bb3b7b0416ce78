"""Honest doubt and what each label means: the verdict, the labels file, on the page, in the API and in the browser."""
from __future__ import annotations

import io
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from snakes_web import create_app
from snakes_web.config import load_settings
from snakes_web.exceptions import ModelLoadError
from snakes_web.model.label_guide import DEFAULT_GUIDE, WARNINGS, parse_guide, read_guide
from snakes_web.model.loader import load_configured
from snakes_web.model.predictor import Prediction
from snakes_web.model.served import ServedPredictor, shift_for
from snakes_web.model.snakenet import NOT_A_SNAKE, SNAKE_SPECIES, VOCAB, SnakeNet
from snakes_web.web.results import Doubt, verdict_of
from tests.browser import chromium, live_server, watched_page
from tests.conftest import image_bytes

SHIPPED = Doubt(unsure_below=0.5, could_be_above=0.05)


def answer(**probabilities: float) -> list[Prediction]:
    """Predictions over the default vocab: the named ones (underscores for spaces), the rest sharing what is left."""
    named = {label.replace("_", " "): p for label, p in probabilities.items()}
    rest = [label for label in VOCAB if label not in named]
    share = (1.0 - sum(named.values())) / len(rest)
    return sorted((Prediction(label, named.get(label, share)) for label in VOCAB), key=lambda p: -p.probability)


def test_not_a_snake_with_a_species_at_5_percent_is_given_with_the_doubt() -> None:
    verdict = verdict_of(answer(not_a_snake=0.86, sea_snake=0.084), SHIPPED)
    assert verdict.kind == "could-be" and verdict.could_be is not None and verdict.could_be.label == "sea snake"
    assert verdict.says == "Probably not a snake — but it could be a sea snake (8%)."
    at_the_line = verdict_of(answer(not_a_snake=0.9, green_mamba=0.05), SHIPPED)
    assert at_the_line.kind == "could-be" and "green mamba (5%)" in at_the_line.says


def test_a_clear_answer_is_sure_and_a_low_top_is_unsure() -> None:
    assert verdict_of(answer(not_a_snake=0.97, sea_snake=0.0049), SHIPPED).says == "This does not look like a snake."
    sure = verdict_of(answer(sea_snake=0.9), SHIPPED)
    assert (sure.kind, sure.says) == ("sure", "This looks most like a sea snake.")
    unsure = verdict_of(answer(sea_snake=0.4, green_snake=0.3), SHIPPED)
    assert unsure.kind == "unsure"
    assert unsure.says == "The model is unsure about this one: no class reached 50%. Its best guess is sea snake (40%)."


@given(st.lists(st.floats(0.0, 1.0), min_size=18, max_size=18).filter(lambda xs: sum(xs) > 0))
@settings(max_examples=300, deadline=None)
def test_no_answer_with_a_species_at_5_percent_says_it_is_not_a_snake_without_the_doubt(raw: list[float]) -> None:
    total = sum(raw)
    predictions = sorted((Prediction(label, p / total) for label, p in zip(VOCAB, raw, strict=True)),
                         key=lambda p: -p.probability)
    verdict = verdict_of(predictions, SHIPPED)
    best_species = max(p.probability for p in predictions if p.label != NOT_A_SNAKE)
    if "not a snake" in verdict.says.lower() or "not look like a snake" in verdict.says:
        assert best_species < 0.05 or verdict.says.startswith("Probably not a snake — but it could be a ")
    if predictions[0].label == NOT_A_SNAKE and best_species >= 0.05:
        assert verdict.kind == "could-be"


# --- the labels file -------------------------------------------------------------------------------

def test_the_default_labels_file_describes_every_label_and_says_which_are_venomous() -> None:
    guide = read_guide(DEFAULT_GUIDE)
    assert set(guide.entries) == set(VOCAB) and len(guide.sources) >= 2
    venomous = {label for label, entry in guide.entries.items() if entry.warning == "venomous"}
    assert venomous == {"Indian cobra", "green mamba", "sea snake", "horned viper", "diamondback rattlesnake",
                        "sidewinder"}
    assert all(guide.entries[label].description and guide.entries[label].link for label in SNAKE_SPECIES)
    assert guide.deployment_prior == {NOT_A_SNAKE: 0.5}


@pytest.mark.parametrize("entry, words", [
    ({"description": "no name"}, 'needs a "name"'),
    ({"name": "X", "warning": "deadly"}, "not one of " + ", ".join(WARNINGS)),
    ({"name": "X", "link": "javascript:alert(1)"}, "http(s) address"),
    ({"name": "X", "colour": "red"}, "unknown fields"),
])
def test_a_labels_file_that_is_wrong_is_refused_with_what_is_wrong(entry: dict[str, Any], words: str) -> None:
    with pytest.raises(ModelLoadError, match=words.replace("(", r"\(").replace(")", r"\)")):
        parse_guide({"labels": {"red": entry}}, "test.json")


def test_the_labels_file_beside_the_model_is_read_and_the_setting_overrides_it(
        default_onnx: Path, tmp_path: Path) -> None:
    model = tmp_path / "export.onnx"
    shutil.copy(default_onnx, model)
    entry = {"name": "Beside", "warning": "venomous"}
    (tmp_path / "labels.json").write_text(json.dumps({"labels": {"sea snake": entry}}))
    beside = load_configured(load_settings(overrides={"MODEL": str(model), "PRIORS": "none"}))
    assert beside.describe()["labels_file"]["entries"] == {"sea snake": entry}
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"labels": {"cat": {"name": "Cat"}}}))
    with pytest.raises(ModelLoadError, match="describes 'cat', which the model does not have"):
        load_configured(load_settings(overrides={"MODEL": str(model), "LABELS": str(other)}))


def test_export_onnx_copies_the_labels_file_and_the_training_prior_into_the_model(default_onnx: Path) -> None:
    import onnxruntime as ort

    meta = ort.InferenceSession(str(default_onnx)).get_modelmeta().custom_metadata_map
    assert json.loads(meta["label_guide"]) == json.loads(DEFAULT_GUIDE.read_text())
    assert json.loads(meta["training_prior"]) == SnakeNet.training_prior


# --- on the page and in the API ------------------------------------------------------------------

class SeaSnakeBackend:
    """Answers the issue's sea-snake photo whatever the image (no prior applied): 86 % not a snake, 8.4 % sea snake."""

    labels = list(VOCAB)
    training_prior = SnakeNet.training_prior
    label_guide = json.loads(DEFAULT_GUIDE.read_text())

    def predict(self, image: Image.Image) -> list[Prediction]:
        return answer(not_a_snake=0.86, sea_snake=0.084)

    def describe(self) -> dict[str, Any]:
        return {"name": "sea-snake-photo", "backend": "fixed", "input_size": [32, 32], "labels": 18,
                "vocab": self.labels}


def multipart() -> dict[str, Any]:
    """A photo upload as the page's form sends it."""
    photo = FileStorage(io.BytesIO(image_bytes()), "p.png", content_type="image/png")
    boundary, body = encode_multipart({"file": photo})
    return {"data": body, "content_type": f"multipart/form-data; boundary={boundary}"}


def could_be_app(tmp_path: Path) -> Any:
    """The app serving the fixed answer with the default labels file and no prior (so the doubt shows)."""
    backend = SeaSnakeBackend()
    predictor = ServedPredictor(backend, None, parse_guide(backend.label_guide, "default"))
    return create_app({"PREDICTOR": predictor, "TESTING": True, "DATA_DIR": str(tmp_path / "data")})


def test_the_api_carries_the_verdict_and_what_the_labels_mean(tmp_path: Path) -> None:
    client = could_be_app(tmp_path).test_client()
    body = client.post("/api/v1/predict", **multipart()).get_json()
    assert body["verdict"] == "could-be" and body["could_be"] == {"label": "sea snake", "probability": 0.084}
    assert body["says"] == "Probably not a snake — but it could be a sea snake (8%)."
    assert set(body["about"]) == {NOT_A_SNAKE, "sea snake"} and body["about"]["sea snake"]["warning"] == "venomous"
    model = client.get("/api/v1/model").get_json()
    assert len(model["labels_file"]["entries"]) == 18 and model["priors"] is None


def test_the_page_says_probably_not_a_snake_and_shows_the_venomous_badge(tmp_path: Path) -> None:
    page = could_be_app(tmp_path).test_client().post("/", **multipart()).get_data(as_text=True)
    assert "Probably not a snake" in page and "This does not look like a snake" not in page
    assert "Probably not a snake — but it could be a sea snake (8%)." in page
    assert "Venomous — keep your distance" in page and "Hydrophiinae" in page
    assert "An answer from a photo can be wrong" in page


def test_the_shipped_prior_and_labels_reach_the_api(default_onnx: Path, tmp_path: Path) -> None:
    predictor = load_configured(load_settings(overrides={"MODEL": str(default_onnx)}))
    client = create_app({"PREDICTOR": predictor, "TESTING": True, "DATA_DIR": str(tmp_path / "d")}).test_client()
    model = client.get("/api/v1/model").get_json()
    assert model["priors"]["deployment"][NOT_A_SNAKE] == 0.5 and "labels file" in model["priors"]["source"]
    assert shift_for(predictor, predictor.guide, "none") is None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    yield from chromium()


def test_in_the_browser_the_doubt_and_the_badge_are_shown(browser: Any, tmp_path_factory: Any) -> None:
    with live_server(could_be_app(tmp_path_factory.mktemp("could-be"))) as base:
        for page in watched_page(browser):
            page.goto(base)
            page.set_input_files("#file", files=[{"name": "p.png", "mimeType": "image/png", "buffer": image_bytes()}])
            heading = page.locator(".result:not(.pending) h2")
            heading.wait_for(timeout=15_000)
            assert heading.inner_text().startswith("Probably not a snake")
            assert page.inner_text(".note") == "Probably not a snake — but it could be a sea snake (8%)."
            assert page.inner_text(".badge.venomous") == "Venomous — keep your distance"
            assert page.get_attribute(".about a", "href") == "https://en.wikipedia.org/wiki/Sea_snake"
