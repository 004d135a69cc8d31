"""The RQ worker process (``python -m workers``) and its jobs."""
