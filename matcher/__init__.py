"""Matching stage: Celery workers that recognise catalogued objects in listing photos."""
