"""vpd: visual perception with pretrained text-to-image diffusion models."""

__version__ = "0.1.0"
