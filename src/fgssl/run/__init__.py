"""Everything that reads the Hydra config or a run directory: the data module, module and
trainer built from the config (:mod:`fgssl.run.factory`), the training pipeline
(:mod:`fgssl.run.pipeline`), checkpointing, resumption, the run's outputs and the sweep
report. Nothing is imported here: import the module you need."""
