"""Old path of the data-loader getters ``snakes-web train`` pickles, kept so that older exports still load.

fastai pickles an export's classes by dotted path: every ``snakes-web train`` export made by 0.1.0
names ``snakes_web.training.ReadPhoto`` and ``ClassFolder``. They now live in
``snakes_web.model.fastai_data``; import them from there in new code.
"""
from snakes_web.model.fastai_data import ClassFolder, ReadPhoto

__all__ = ["ClassFolder", "ReadPhoto"]
