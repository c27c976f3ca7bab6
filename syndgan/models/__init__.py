"""Networks: feature network, discriminators, generators, SyNDGAN's synthesis network; ``snapshots`` reads them back."""
