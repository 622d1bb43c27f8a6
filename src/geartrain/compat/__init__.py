"""Compatibility layers for code written against other Gearman libraries.

:mod:`geartrain.compat.gearman` offers python-gearman 2.0.2's classes and
method signatures, so ``import gearman`` becomes
``from geartrain.compat import gearman``.
"""
