"""Restorers and what they are built from: wavelets, networks, the Brownian bridge, MSCGM,
the CARE and DDPM baselines, the classical restorer, noise estimation, and model files.

Nothing here imports the simulator, the acquisition or the experiments.
"""
