"""Integrations: silenttax inside other engines.

The engine-neutral part (:mod:`silenttax.integrations.partitions`) summarises
one partition into snapshot bytes and merges snapshots; an engine adapter only
maps the first over its partitions and tree-reduces with the second.
:mod:`silenttax.integrations.dask` and :mod:`silenttax.integrations.spark` are
such adapters. Nothing here is
imported by ``import silenttax``.
"""
