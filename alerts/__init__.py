"""Alerting stage: digests, delivery, the review web app and reviewer feedback."""
