"""L2D: a frozen autoregressive LM plus a flow stream that turns each next token into a few steps
of a flow in a learned token space (``../shared/notes/l2d.md``)."""

from methods.l2d.config import L2DConfig
from methods.l2d.method import L2DMethod

__all__ = ["L2DConfig", "L2DMethod"]
