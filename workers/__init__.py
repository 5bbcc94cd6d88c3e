"""Celery ingest workers: thin tasks that decode arguments, call a provenance service, and decide on retry.

``workers.queue`` is the interface the HTTP API and the CLI use (``open_queue``, ``IngestQueue``, ``TaskStatus``);
``workers.app`` the Celery app (``celery -A workers.app worker`` or ``provenance worker``); ``workers.tasks`` the
chain of one image; ``workers.anchoring`` the periodic-anchor guards. Importing this package reads no settings.
"""
