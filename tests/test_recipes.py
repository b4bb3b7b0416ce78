"""Your own fastai model, trained the way the fastai book trains it, converts to ONNX and gives fastai's answers.

Each recipe of ``tests/recipes.py`` is trained for one epoch on generated photos, exported with
``learn.export()``, converted with ``snakes-web export-onnx``, and checked on probes where each label is
fastai's answer: the same top-1 (a multi-label model: the same labels named) and every probability
within 1e-4 of ``learn.predict``, through the predictor, the app's API and ``snakes-web predict``.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from snakes_web import create_app
from snakes_web.model.loader import load_predictor
from snakes_web.tools.bench.recipes import RECIPES, Recipe, export, train
from snakes_web.tools.cli import main
from tests.recipes import fastai_answers, probes_for

pytestmark = pytest.mark.slow
TOLERANCE = 1e-4


@dataclass
class Trained:
    """One recipe, trained and exported: the learner in memory, its files and its probes."""

    name: str
    recipe: Recipe
    learner: Any
    pkl: Path
    onnx: Path
    converted: int
    probes: list[Image.Image]

    def expected(self, image: Image.Image) -> tuple[list[str], dict[str, float]]:
        """fastai's answer on ``image``: the labels ``predict`` names, and each label's probability."""
        named, probabilities = fastai_answers(self.learner, image)
        return named, dict(zip([str(v) for v in self.learner.dls.vocab], probabilities, strict=True))


@pytest.fixture(scope="module", params=list(RECIPES))
def trained(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    name: str = request.param
    recipe = RECIPES[name]
    folder = tmp_path_factory.mktemp(name)
    learner = train(recipe, folder)
    pkl = export(learner, folder)
    onnx = folder / "export.onnx"
    converted = main(["export-onnx", str(pkl), str(onnx)])
    return Trained(name, recipe, learner, pkl, onnx, converted, probes_for(learner, recipe.multi_label))


def png(image: Image.Image) -> bytes:
    """Encode a probe losslessly, so the server decodes exactly the pixels fastai saw."""
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def assert_same(trained: Trained, image: Image.Image, named: list[str], probabilities: dict[str, float]) -> None:
    """The served answer is fastai's: the same labels named (the top-1, or above the threshold), probabilities."""
    expected_named, expected = trained.expected(image)
    if trained.recipe.multi_label:
        assert sorted(named) == sorted(expected_named)
    else:
        assert named == expected_named
    assert probabilities.keys() == expected.keys()
    worst = max(abs(probabilities[label] - expected[label]) for label in expected)
    assert worst < TOLERANCE, f"{trained.name}: probabilities differ by {worst:.2g}"


def served_names(predictions: list[dict[str, Any]], body: dict[str, Any]) -> list[str]:
    """What an answer names: its ``labels`` for a multi-label model, else its top prediction."""
    return list(body["labels"]) if "labels" in body else [predictions[0]["label"]]


def test_each_recipe_converts_and_the_onnx_model_gives_fastais_answers(trained: Trained) -> None:
    assert trained.converted == 0, f"{trained.name} did not convert"
    predictor = load_predictor(trained.onnx)
    assert predictor.labels == [str(v) for v in trained.learner.dls.vocab]
    for image in trained.probes:
        predictions = predictor.predict(image)
        threshold = getattr(predictor, "threshold", None)
        named = ([p.label for p in predictions if p.probability > threshold] if threshold is not None
                 else [predictions[0].label])
        assert_same(trained, image, named, {p.label: p.probability for p in predictions})


@pytest.mark.parametrize("backend", ["onnx", "pkl"])
def test_the_app_serves_each_recipe_with_fastais_answers(trained: Trained, backend: str, tmp_path: Path) -> None:
    model = trained.onnx if backend == "onnx" else trained.pkl
    app = create_app({"MODEL": str(model), "TESTING": True, "DATA_DIR": str(tmp_path), "FEEDBACK": False})
    client = app.test_client()
    info = client.get("/api/v1/model").get_json()
    assert info.get("multi_label", False) is trained.recipe.multi_label
    for image in trained.probes:
        response = client.post("/api/v1/predict", data={"file": (io.BytesIO(png(image)), "probe.png")},
                               content_type="multipart/form-data")
        assert response.status_code == 200, response.get_data(as_text=True)
        body = response.get_json()
        predictions = body["predictions"]
        assert_same(trained, image, served_names(predictions, body),
                    {p["label"]: p["probability"] for p in predictions})


def test_snakes_web_predict_gives_fastais_answers_for_each_recipe(
        trained: Trained, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = []
    for n, image in enumerate(trained.probes):
        files.append(tmp_path / f"probe-{n}.png")
        files[-1].write_bytes(png(image))
    capsys.readouterr()
    assert main(["predict", str(trained.onnx), *map(str, files), "--json", "-k", "0"]) == 0
    answers = json.loads(capsys.readouterr().out)
    by_file = {Path(result["file"]).name: result for result in answers["results"]}
    for path, image in zip(files, trained.probes, strict=True):
        result = by_file[path.name]
        assert_same(trained, image, served_names(result["predictions"], result),
                    {p["label"]: p["probability"] for p in result["predictions"]})
