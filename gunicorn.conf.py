"""Gunicorn settings for snakes-web: `gunicorn -c gunicorn.conf.py wsgi:app` (`make run`, the images, Heroku).

The settings themselves live in the package, ``snakes_web/tools/gunicorn_config.py`` (read it for how
requests are served), so that ``snakes-web serve`` has them wherever the package is installed. This
file runs that one afresh each time gunicorn reads it (at start and on ``kill -HUP``), as if it were here.
"""
import runpy

from snakes_web.tools.serve import config_path  # the file, found, not imported: run below

globals().update({key: value for key, value in runpy.run_path(config_path()).items() if not key.startswith("__")})
