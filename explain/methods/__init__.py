"""One module per saliency method; importing this package registers them all."""

from explain.methods.occlusion import Occlusion
from explain.methods.rise import Rise
from explain.methods.sam import Sam
from explain.methods.sbsm import Sbsm

__all__ = ["Occlusion", "Rise", "Sam", "Sbsm"]
