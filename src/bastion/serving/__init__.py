"""Serving registered models: ``/predict`` by alias or version, a model cache that swaps
atomically when an alias moves, a prediction log written in batches, explanations, and
the routing seam (:mod:`bastion.serving.routing`) that progressive delivery plugs into.

Plain Python: no web framework. MLflow is imported on first use.
"""
