"""RL side of dgpo-env: the diffusion policy, DGPO, baselines and the comparison harness."""
