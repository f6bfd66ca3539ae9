"""Telling someone: the alert webhook (webhook.py) and when a day's exports count as late (freshness.py).

Pure: the sensors and assets that call these live in automation/alerts.py and predict/assets.py.
"""
