"""The WSGI entry point: `gunicorn -c gunicorn.conf.py wsgi:app`."""
from snakes_web import create_app

app = create_app()
