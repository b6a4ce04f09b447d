"""The discrete noise process on cell DAGs, shared by the environment and the diffusion model (docs/diffusion.md).

:mod:`~dgpo_env.diffusion.schedule` holds the noise and step schedules, :mod:`~dgpo_env.diffusion.marginals`
the per-position marginals (the prior), and :mod:`~dgpo_env.diffusion.noise` the transitions, posterior and
reverse step (:class:`~dgpo_env.diffusion.noise.NoiseProcess`).
"""
