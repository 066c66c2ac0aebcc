"""The networks of U-GAT-IT: building blocks (`layers`), generator and discriminator (`networks`), the
six networks together (`model`), the size rules (`sizes`) and the objective (`losses`)."""

from .model import DISCRIMINATORS, GENERATORS, NETWORK_NAMES, UGATIT, Translation
from .networks import Discriminator, Generator

__all__ = ["DISCRIMINATORS", "GENERATORS", "NETWORK_NAMES", "UGATIT", "Discriminator", "Generator", "Translation"]
