"""Shared code of the trusted-AI credit-risk workshop.

One module per concern of the flow; ``docs/architecture.md`` lists them all.
"""
