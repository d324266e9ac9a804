"""Restorers and what they are built from.

- the contract: :mod:`.protocol` (Restorer, RestoreResult, input checks) and :mod:`.restorer`
  (the registry by name);
- what every trained model shares: :mod:`.normalisation`, :mod:`.configs`, :mod:`.inference`
  (the one tiled inferer), :mod:`.trained` and :mod:`.files` (safetensors + JSON);
- the models: :mod:`.mscgm` (on :mod:`.wavelets`, :mod:`.bridge`, :mod:`.networks`,
  :mod:`.timesteps`), the baselines :mod:`.care` and :mod:`.ddpm`, and :mod:`.classical`;
- noise: :mod:`.noise` (per-frame estimate), :mod:`.calibration` (detector calibration), and
  the data-consistency score :mod:`.consistency`.

Nothing here imports the simulator, the acquisition or the experiments.
"""
