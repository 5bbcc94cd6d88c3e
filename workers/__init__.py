"""Celery ingest workers: thin tasks that decode arguments, call a provenance service, and decide on retry.

The task chain (C2PA -> hash -> local features -> block store -> sign and append -> index) lands with the
service issue; this package already ships in the distribution so deployments can name it.
"""
