"""Pure training objectives: each takes params and a batch and returns ``(loss, aux)``."""

from jaxaug.objectives.classification import cross_entropy

__all__ = ["cross_entropy"]
