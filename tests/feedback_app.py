"""A gunicorn app for the feedback tests: the fake colour model (no inference cost), everything else real.

`gunicorn -c gunicorn.conf.py 'tests.feedback_app:create()'`, with SNAKES_MODEL naming any .onnx file
(gunicorn.conf.py checks that it exists) and SNAKES_DATABASE_URL the database under test.
"""
from __future__ import annotations

from flask import Flask

from snakes_web import create_app
from tests.conftest import FakePredictor


def create() -> Flask:
    """Return the app with the fake model."""
    return create_app({"PREDICTOR": FakePredictor()})
