"""One module per saliency method; importing this package registers them all."""

from explain.methods.sbsm import Sbsm

__all__ = ["Sbsm"]
