"""The fastai backend: a real (tiny) export loads, predicts every class, and fails clearly."""
from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
from PIL import Image

from snakes_web.exceptions import ModelLoadError
from snakes_web.model.loader import FastaiPredictor, PredictorHolder, load_predictor
from snakes_web.model.predictor import ranked
from tests.tiny_learner import TINY_LABELS, export_tiny_learner


def test_a_fastai_export_loads_and_predicts_every_class_sorted(tiny_export: Path) -> None:
    predictor = load_predictor(tiny_export)
    predictions = predictor.predict(Image.new("RGB", (50, 40), (10, 200, 30)))
    assert sorted(p.label for p in predictions) == sorted(TINY_LABELS)
    probabilities = [p.probability for p in predictions]
    assert probabilities == sorted(probabilities, reverse=True)
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)


def test_describe_names_backend_size_and_labels(tiny_export: Path) -> None:
    described = load_predictor(tiny_export, name="tiny").describe()
    assert described == {"name": "tiny", "backend": "fastai", "input_size": [32, 32],
                         "labels": 2, "vocab": list(TINY_LABELS)}


def test_the_model_name_falls_back_to_the_file_name(tiny_export: Path) -> None:
    assert load_predictor(tiny_export).describe()["name"] == "export"


def test_predict_prints_no_progress_bar(tiny_export: Path, capfd: pytest.CaptureFixture[str]) -> None:
    predictor = load_predictor(tiny_export)
    capfd.readouterr()
    predictor.predict(Image.new("RGB", (30, 30)))
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_non_rgb_images_are_accepted(tiny_export: Path) -> None:
    predictor = load_predictor(tiny_export)
    for mode in ("RGBA", "L", "CMYK", "P"):
        assert len(predictor.predict(Image.new(mode, (33, 33)))) == 2


def test_a_missing_file_names_the_path_and_the_setting(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pkl"
    with pytest.raises(ModelLoadError, match="SNAKES_MODEL") as info:
        load_predictor(missing)
    assert str(missing) in str(info.value)


def test_a_file_that_is_not_a_pickle_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "export.pkl"
    bad.write_bytes(b"this is not a pickle")
    with pytest.raises(ModelLoadError, match=r"not a loadable fastai export.*SNAKES_MODEL"):
        load_predictor(bad)


def test_a_pickle_that_is_not_a_learner_fails_clearly(tmp_path: Path) -> None:
    import torch

    bad = tmp_path / "export.pkl"
    torch.save({"just": "a dict"}, bad)
    with pytest.raises(ModelLoadError, match="not a fastai Learner export"):
        load_predictor(bad)


def test_an_export_needing_a_missing_module_says_so(tmp_path: Path) -> None:
    module = tmp_path / "mods" / "zz_custom_net.py"
    module.parent.mkdir()
    module.write_text("from torch import nn\n"
                      "class Net(nn.Sequential):\n"
                      "    pass\n")
    sys.path.insert(0, str(module.parent))
    try:
        import zz_custom_net  # type: ignore[import-not-found]
        from torch import nn
        net = zz_custom_net.Net(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        path = export_tiny_learner(tmp_path, model=net)
    finally:
        sys.path.remove(str(module.parent))
        sys.modules.pop("zz_custom_net", None)
    with pytest.raises(ModelLoadError, match="the module .zz_custom_net., which is not importable here"):
        load_predictor(path)


def test_an_unknown_file_type_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "model.h5"
    other.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match=r"\.pkl"):
        load_predictor(other)


def test_the_holder_loads_once_and_only_when_asked(tiny_export: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[Path] = []
    real_init = FastaiPredictor.__init__

    def counting_init(self: FastaiPredictor, path: Path, **kwargs: object) -> None:
        loads.append(path)
        real_init(self, path, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(FastaiPredictor, "__init__", counting_init)
    holder = PredictorHolder({"MODEL": str(tiny_export)})
    assert not holder.loaded and loads == []
    first = holder.get()
    holder.warm_up()
    assert holder.get() is first and loads == [tiny_export]


def test_ranked_keeps_the_model_order_on_ties() -> None:
    assert [p.label for p in ranked(["a", "b", "c"], [0.25, 0.5, 0.25])] == ["b", "a", "c"]


def test_predictions_pickle_cleanly() -> None:
    prediction = ranked(["a"], [1.0])[0]
    assert pickle.loads(pickle.dumps(prediction)) == prediction


def test_an_export_needing_a_missing_class_names_it(tmp_path: Path) -> None:
    import types

    from torch import nn

    module = types.ModuleType("zz_vanishing")
    exec("from torch import nn\nclass Gone(nn.Sequential):\n    pass\n", module.__dict__)
    sys.modules["zz_vanishing"] = module
    try:
        net = module.Gone(nn.Conv2d(3, 2, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        path = export_tiny_learner(tmp_path, model=net)
        del module.Gone  # the module still imports, the class is gone
        expected = r"not importable here \(Can't get attribute 'Gone' on <module 'zz_vanishing'>\)"
        with pytest.raises(ModelLoadError, match=expected):
            load_predictor(path)
    finally:
        sys.modules.pop("zz_vanishing", None)
