"""Networks: feature network, discriminators, generators, the SyNDGAN encoder."""
