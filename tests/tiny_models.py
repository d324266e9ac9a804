"""Settings for MSCGM models small enough to train and run in unit tests."""

SMALL_MSCGM = {
    "bridge_channels": 8,
    "bridge_mults": (1, 2),
    "head_channels": 8,
    "finest_head_channels": 8,
    "disc_channels": 8,
    "num_timesteps": 100,
    "steps": 2,
}
