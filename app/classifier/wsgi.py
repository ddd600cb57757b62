"""WSGI entry point: ``gunicorn --preload classifier.wsgi:app``."""

import gc

from classifier import create_app

app = create_app()

# gunicorn --preload forks the workers from this process once the model is loaded. Frozen
# objects are left out of garbage collection, so no worker's collector writes to the pages of
# the model it shares with the others (copy-on-write would give each worker its own copy):
# PSS of master + 2 workers 273 -> 206 MB, measured with scripts/bench's memory figures.
gc.freeze()
