"""Living inside a Micro-Manager acquisition.

``core`` (cores that shut down cleanly), ``hook`` (the live restorer, an MDA output handler),
``worker`` (its background restorer), ``adapt_first`` (adapting a channel's model on its
first frames during the run), ``engine`` (the draining engine, pinned to pymmcore-plus
internals), ``run`` (run_acquisition, resume), ``restore_loop`` (the one per-frame loop), ``store``
with ``layout`` and ``ledger`` (the OME-Zarr container and its journal), ``liveview`` and
``batch`` (files). The only package that imports pymmcore-plus (besides ``sim.devices``) and zarr.
"""
