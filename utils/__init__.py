"""Shared code of the trusted-AI credit-risk workshop.

One module per concern of the flow: ``data`` (contract, loader, generator),
``validation`` (schema inference and checks), ``features`` (preprocessing),
``training`` (fit and evaluate), ``registry`` (versioned model store and
factsheets), ``pipeline`` (papermill runner) and ``config`` (paths).
"""
