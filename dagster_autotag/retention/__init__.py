"""Retention: what may be deleted, and deleting it (lake files, MLflow artifacts of archived versions).

Pure; automation/retention.py runs it as a job on a schedule.
"""
