"""syndgan: synthesize industrial defect images from normal images and defect masks (SyNDGAN).

Pure library: models, losses, metrics, data readers. No yaml, argv, DVC or Prefect here.
"""

__version__ = "0.1.0"
