"""ugatit: U-GAT-IT unsupervised image-to-image translation (Kim et al., ICLR 2020)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ugatit")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"
