"""Living inside a Micro-Manager acquisition: the hook, its worker, the draining engine, the
live view, the store with its ledger, and batch restoration of files.

The only package that imports pymmcore-plus (besides ``sim.devices``) and zarr.
"""
