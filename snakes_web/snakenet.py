"""Old path of ``snakes_web.model.snakenet``, kept so that models exported before the layered layout still load.

fastai pickles an export's classes by dotted path: every default model and ``snakes-web train`` export
made by 0.1.0 names ``snakes_web.snakenet.SnakeNet`` (or ``Lite0Classifier``, ``Lite0Body``,
``body_and_head``). Import from ``snakes_web.model.snakenet`` in new code.
"""
from snakes_web.model.snakenet import Lite0Body, Lite0Classifier, SnakeNet, body_and_head

__all__ = ["Lite0Body", "Lite0Classifier", "SnakeNet", "body_and_head"]
