"""Training loops (pretraining, SyNDGAN) and the plumbing they share (``common``)."""
