"""WSGI entry point: ``gunicorn --preload classifier.wsgi:app``."""

from classifier import create_app

app = create_app()
