"""The insights dashboard's data, figures and pages, read live from the data mart.

``status`` (evaluated windows, alerts, a tile per deployment) and ``details`` (the fairness and drift of one
window) and ``transactions`` (a window's transactions, filtered; one transaction explained) → ``figures`` (Plotly
charts) → ``pages`` (the HTML pages, Jinja2 templates in ``templates/``). The scoring service serves them under
``/dashboard`` (:mod:`utils.serving.insights_routes`).
"""

from utils.config import dashboard_url
from utils.dashboard.pages import PREFIX

__all__ = ["PREFIX", "dashboard_url"]
