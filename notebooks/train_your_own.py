# %% [markdown]
# # Train your own model
#
# The steps of `snakes-web train`, one cell each, for VS Code or Jupyter (in the dev container:
# `docker compose run --rm dev`, the project is at `/app`). This `.py` file is the source of truth;
# `jupytext --to ipynb notebooks/train_your_own.py` makes a notebook of it if you want one.
#
# Put your photos in one sub-folder per class (`photos/cougar/*.jpg`, `photos/lynx/*.jpg`, ...), or in
# `train/` and `valid/` folders that each hold the class folders. The settings below come from the
# environment, so the same file runs as a script: `TRAIN_PHOTOS=photos python notebooks/train_your_own.py`.

# %%
import os
from pathlib import Path

from snakes_web.config import load_settings
from snakes_web.imaging.images import load_image
from snakes_web.model.loader import load_predictor
from snakes_web.tools import train

PHOTOS = Path(os.environ.get("TRAIN_PHOTOS", "photos"))
OUTPUT = Path(os.environ.get("TRAIN_OUTPUT", "models/export.pkl"))
OPTIONS = train.Options(
    epochs=int(os.environ.get("TRAIN_EPOCHS", train.Options.epochs)),
    frozen_epochs=int(os.environ.get("TRAIN_FROZEN_EPOCHS", train.Options.frozen_epochs)),
    size=int(os.environ.get("TRAIN_SIZE", train.Options.size)),
    min_per_class=int(os.environ.get("TRAIN_MIN_PER_CLASS", train.Options.min_per_class)),
)
print(OPTIONS)

# %% [markdown]
# ## 1. Check the photos
# Every file is read the way the server reads an upload; the ones it cannot read are listed and left out.

# %%
dataset = train.scan_dataset(PHOTOS, OPTIONS)
print(dataset.describe())
print("\n".join(train.bad_file_lines(dataset.bad, dataset.root)) or "Every file is a readable image.")

# %% [markdown]
# ## 2. The data, as the network sees it
# Training photos are flipped, turned, zoomed and relit a little; validation photos get exactly what the
# server does (short side resized, centre crop).

# %%
threads = train.setup_torch(OPTIONS)  # the seed, and torch's threads (the cores we may use)
dls = train.dataloaders(dataset, OPTIONS)
dls.show_batch(max_n=9)

# %% [markdown]
# ## 3. Fine-tune
# The default model's pretrained EfficientNet-Lite0 with a new top: first the top alone (frozen
# epochs), then everything. Progress shows as bars in a notebook, one line per epoch in a script.

# %%
learner = train.make_learner(dls, name=f"{dataset.root.name}-efficientnet-lite0")
train.fit(learner, OPTIONS)

# %% [markdown]
# ## 4. How good is it?

# %%
report = train.evaluate(learner, dataset)
print(report.text(dataset.root))
plot = train.plot_confusion(report, OUTPUT.with_name(f"{OUTPUT.stem}-confusion.png"))
print(f"The confusion matrix as a picture: {plot}")

# %% [markdown]
# ## 5. Export: the `.pkl`, and the `.onnx` the server serves leanest
# Serve either with `SNAKES_MODEL=<path> make run`.

# %%
pkl = train.export(learner, OUTPUT)
onnx, compared, same, largest = train.export_onnx_checked(pkl, report)
print(f"{pkl}\n{onnx}: same top class as the .pkl on {same} of {compared} validation photos "
      f"(largest probability difference {largest:.1e})")

# %% [markdown]
# ## 6. Predict as the server does
# The same loader and backends as the server (and `snakes-web predict`).

# %%
served = load_predictor(onnx)
max_pixels = load_settings()["MAX_IMAGE_PIXELS"]
for path, label in dataset.valid[:5]:
    top = served.predict(load_image(path.read_bytes(), max_pixels, min_side=served.min_side))[0]
    print(f"{path.relative_to(dataset.root)}: {label}, predicted {top.label} ({top.probability:.0%})")
