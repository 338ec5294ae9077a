"""Differentiable ops, one ``Function`` class each, forward beside backward.

``npgan.functional`` re-exports everything here; import that (``import npgan.functional as F``).
"""
