"""Generation-only augmentation (the paper's Projected FastGAN / ADA baselines, Tables 1 and 4): the pretrained
unconditional generator fine-tuned on each defect class's train-pool images, then sampled for that class.

- ``settings.py``: ``GenerationSettings``, the schema of params.yaml's ``train_generation`` (no torch import).
- ``finetune.py``: the fine-tuning, one generator (and projected discriminator) per class, in the trainer
  skeleton ``syndgan.training.loop``; writes ``generators.pt``.
- ``sampling.py``: ``ClassGenerators``, what inference loads from ``generators.pt`` (no training code): the
  augment method ``generation`` (``syndgan.augment.generation``) samples through it.

It is a package of its own, beside ``syndgan/training`` and ``syndgan/models``, so that adding it changes none of
the code the pretrain and train_synth stages (and their resume states' code digests) depend on.
"""
