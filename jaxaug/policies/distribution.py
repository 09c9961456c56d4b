"""A learnable distribution over augmentation policies, for REINFORCE policy learners.

:class:`PolicyDistribution` describes a *sub-policy* of ``num_steps`` steps. At every step
``t`` it has a categorical distribution over the ``K = num_ops * num_levels`` joint
``(op, level)`` classes, parameterised by unnormalised logits ``logits[t]``; the steps are
independent, so the distribution of a whole sub-policy ``a = (a_0, ..., a_{T-1})`` is the
product over steps::

    p(a)      = prod_t softmax(logits_t)[a_t]
    log p(a)  = sum_t  log_softmax(logits_t)[a_t]
    H         = sum_t  H_t,      H_t = -sum_k p_t(k) log p_t(k)

and the score function (the quantity the REINFORCE estimator
``grad E[r(a)] = E[r(a) grad log p(a)]`` averages) is, per step,

    d log p(a) / d logits_t = onehot(a_t) - softmax(logits_t).

The joint class of op index ``o`` and level ``l`` is ``k = o * num_levels + l``.

It is a pure functional object in the optax / distrax style: the instance only holds static
configuration (op names and sizes, no arrays), and every method takes the learnable
``logits`` (shape ``[num_steps, num_ops * num_levels]``, see :meth:`init_logits`)
explicitly. The instance is a ``flax.struct`` pytree with no leaves, so it can be closed
over or passed straight through ``jax.jit``, ``jax.vmap`` and ``jax.grad``;
:meth:`log_prob` and :meth:`entropy` are differentiable with respect to ``logits``.

An *action* is an integer array of shape ``[..., num_steps, 2]`` whose last axis holds
``(op index, level)``; op index ``i`` names ``op_names[i]`` and the level is on the
0 .. ``num_levels - 1`` scale (0-10 for the default 11 bins, the AutoAugment scale that
:func:`jaxaug.policies.levels.level_to_arg` takes). :meth:`describe` turns actions into
``(op_name, level)`` pairs on the host.

Validation: logits of the wrong shape raise ``ValueError`` naming the expected shape;
actions whose trailing shape is not ``(num_steps, 2)`` or whose dtype is not integer raise
``ValueError``. Action *values* (op index in ``[0, num_ops)``, level in
``[0, num_levels)``) are checked only when the actions are concrete arrays; under
``jit``/``vmap``/``grad`` they are traced and **not** checked, and out-of-range values then
give undefined results (JAX clamps or fills out-of-bounds gathers).
"""

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax.typing import DTypeLike

from jaxaug.policies.tables import MAX_LEVEL, MIN_LEVEL, RANDAUGMENT_OPS, check_op_name


# Jitted kernels: the methods call these, so eager (un-jitted) use compiles one program per
# call signature instead of dispatching every primitive separately. Under an outer jit they
# are simply inlined.
@jax.jit
def _softmax(logits):
    return jax.nn.softmax(logits, axis=-1)


@functools.partial(jax.jit, static_argnames=("num_levels", "shape"))
def _sample(key, logits, num_levels, shape):
    index = jax.random.categorical(
        key, logits, axis=-1, shape=shape + (logits.shape[0],)
    )
    return jnp.stack([index // num_levels, index % num_levels], axis=-1).astype(
        jnp.int32
    )


@functools.partial(jax.jit, static_argnames=("num_levels",))
def _log_prob(logits, actions, num_levels):
    index = actions[..., 0] * num_levels + actions[..., 1]
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.sum(logp[jnp.arange(logits.shape[0]), index], axis=-1)


@jax.jit
def _entropy(logits):
    logp = jax.nn.log_softmax(logits, axis=-1)
    p = jnp.exp(logp)
    plogp = jnp.where(p > 0, p * jnp.where(p > 0, logp, 0.0), 0.0)
    return -jnp.sum(plogp)


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(
        value, (bool, np.bool_)
    )


@struct.dataclass
class PolicyDistribution:
    """Product over ``num_steps`` steps of categoricals over joint ``(op, level)`` classes.

    Attributes:
        op_names: the ops to choose from, each one of
            :data:`jaxaug.policies.tables.OP_NAMES` (no repeats); defaults to
            :data:`~jaxaug.policies.tables.RANDAUGMENT_OPS`.
        num_levels: number of magnitude bins; levels are ``0 .. num_levels - 1``
            (default 11: the 0-10 AutoAugment scale).
        num_steps: number of steps (ops) in a sampled sub-policy (default 2).

    With ``T = num_steps`` and ``K = num_ops * num_levels`` the logits have shape
    ``[T, K]`` and the distribution is ``p(a) = prod_t softmax(logits_t)[a_t]`` (see the
    module docstring for log-probability, entropy and score function).
    """

    op_names: tuple[str, ...] = struct.field(pytree_node=False, default=RANDAUGMENT_OPS)
    num_levels: int = struct.field(pytree_node=False, default=MAX_LEVEL - MIN_LEVEL + 1)
    num_steps: int = struct.field(pytree_node=False, default=2)

    def __post_init__(self):
        if isinstance(self.op_names, (str, bytes)):
            raise TypeError("op_names must be a sequence of op names, not a string")
        op_names = tuple(self.op_names)
        if not op_names:
            raise ValueError("op_names must name at least one op")
        for name in op_names:
            check_op_name(name)
        if len(set(op_names)) != len(op_names):
            raise ValueError(f"op_names must not repeat an op, got {op_names!r}")
        for field in ("num_levels", "num_steps"):
            value = getattr(self, field)
            if not _is_int(value) or value < 1:
                raise ValueError(f"{field} must be a positive integer, got {value!r}")
        object.__setattr__(self, "op_names", op_names)
        object.__setattr__(self, "num_levels", int(self.num_levels))
        object.__setattr__(self, "num_steps", int(self.num_steps))

    # ------------------------------------------------------------------ sizes and shapes
    @property
    def num_ops(self) -> int:
        """Number of ops, ``len(op_names)``."""
        return len(self.op_names)

    @property
    def num_classes(self) -> int:
        """Joint classes per step, ``K = num_ops * num_levels``."""
        return self.num_ops * self.num_levels

    @property
    def logits_shape(self) -> tuple[int, int]:
        """Shape of the parameters, ``(num_steps, num_ops * num_levels)``."""
        return (self.num_steps, self.num_classes)

    def op_index(self, op_name: str) -> int:
        """Index of ``op_name`` in :attr:`op_names` (``ValueError`` if absent)."""
        if op_name not in self.op_names:
            raise ValueError(
                f"op {op_name!r} is not one of this distribution's ops {self.op_names}"
            )
        return self.op_names.index(op_name)

    def init_logits(self, dtype: DTypeLike = jnp.float32) -> jax.Array:
        """Zero logits of shape :attr:`logits_shape`: the uniform distribution."""
        return jnp.zeros(self.logits_shape, dtype)

    def _check_logits(self, logits):
        logits = jnp.asarray(logits)
        if logits.shape != self.logits_shape:
            raise ValueError(
                f"expected logits of shape {self.logits_shape} "
                f"(num_steps={self.num_steps}, num_ops * num_levels = {self.num_ops} * "
                f"{self.num_levels}), got shape {logits.shape}"
            )
        if not jnp.issubdtype(logits.dtype, jnp.floating):
            raise ValueError(f"logits must be floating point, got dtype {logits.dtype}")
        return logits

    def _check_actions(self, actions):
        if not isinstance(actions, jax.core.Tracer):
            actions = (
                jnp.asarray(actions)
                if isinstance(actions, jax.Array)
                else np.asarray(actions)
            )
        if actions.ndim < 2 or actions.shape[-2:] != (self.num_steps, 2):
            raise ValueError(
                f"expected actions of shape [..., {self.num_steps}, 2] (num_steps, "
                f"(op index, level)), got shape {actions.shape}"
            )
        if not jnp.issubdtype(actions.dtype, jnp.integer):
            raise ValueError(f"actions must be integers, got dtype {actions.dtype}")
        if not isinstance(actions, jax.core.Tracer):
            values = np.asarray(actions)
            ops, levels = values[..., 0], values[..., 1]
            if values.size and (ops.min() < 0 or ops.max() >= self.num_ops):
                raise ValueError(
                    f"action op indices must be in [0, {self.num_ops}), got values in "
                    f"[{ops.min()}, {ops.max()}]"
                )
            if values.size and (levels.min() < 0 or levels.max() >= self.num_levels):
                raise ValueError(
                    f"action levels must be in [0, {self.num_levels}), got values in "
                    f"[{levels.min()}, {levels.max()}]"
                )
        return jnp.asarray(actions)

    # -------------------------------------------------------------- action <-> class index
    def joint_index(self, actions: jax.Array) -> jax.Array:
        """Joint class ``op * num_levels + level`` of actions ``[..., T, 2]``, shape ``[..., T]``."""
        actions = self._check_actions(actions)
        return actions[..., 0] * self.num_levels + actions[..., 1]

    def actions_from_index(self, index: jax.Array) -> jax.Array:
        """Inverse of :meth:`joint_index`: ``[..., T]`` classes to ``[..., T, 2]`` actions."""
        index = jnp.asarray(index)
        return jnp.stack([index // self.num_levels, index % self.num_levels], axis=-1)

    # ------------------------------------------------------------------- distribution API
    def probs(self, logits: jax.Array) -> jax.Array:
        """Per-step probabilities ``softmax(logits_t)``, shape ``[num_steps, num_ops, num_levels]``."""
        logits = self._check_logits(logits)
        return _softmax(logits).reshape(self.num_steps, self.num_ops, self.num_levels)

    def sample(self, key: jax.Array, logits: jax.Array, shape: Sequence[int] = ()) -> jax.Array:
        """Draw actions of shape ``shape + (num_steps, 2)`` holding ``(op index, level)``.

        Each step's joint class is drawn independently with
        ``jax.random.categorical(key, logits_t)`` (all samples and steps in one call, no
        Python loop), then split into ``op = k // num_levels`` and
        ``level = k % num_levels``. ``shape`` must be static under ``jit``.
        """
        logits = self._check_logits(logits)
        shape = tuple(shape)
        return _sample(key, logits, self.num_levels, shape)

    def log_prob(self, logits: jax.Array, actions: jax.Array) -> jax.Array:
        """``log p(a) = sum_t log_softmax(logits_t)[a_t]`` for actions ``[..., T, 2]``.

        Returns shape ``[...]`` (the actions' leading shape). Differentiable in ``logits``;
        its gradient is ``onehot(a_t) - softmax(logits_t)`` in row ``t``.
        """
        logits = self._check_logits(logits)
        return _log_prob(logits, self._check_actions(actions), self.num_levels)

    def entropy(self, logits: jax.Array) -> jax.Array:
        """``H = sum_t H_t`` with ``H_t = -sum_k p_t(k) log p_t(k)`` (a scalar).

        Classes of probability 0 (logit ``-inf``) contribute 0. Differentiable in ``logits``.
        Uniform logits give the maximum, ``num_steps * log(num_ops * num_levels)``.
        """
        logits = self._check_logits(logits)
        return _entropy(logits)

    def max_entropy(self) -> float:
        """Entropy of the uniform distribution, ``num_steps * log(num_ops * num_levels)``."""
        return self.num_steps * math.log(self.num_classes)

    def mode(self, logits: jax.Array) -> jax.Array:
        """Most probable actions (per-step argmax), shape ``(num_steps, 2)``."""
        logits = self._check_logits(logits)
        return self.actions_from_index(jnp.argmax(logits, axis=-1)).astype(jnp.int32)

    # ------------------------------------------------------------------------ host side
    def describe(self, actions: jax.Array | np.ndarray) -> tuple | list:
        """Actions as ``(op_name, level)`` pairs, on the host (for logging).

        ``actions`` of shape ``(num_steps, 2)`` give a tuple of ``num_steps`` pairs; a
        leading batch shape gives nested lists of such tuples. Values are checked (this
        needs concrete arrays, so it cannot be called under ``jit``).
        """
        if isinstance(actions, jax.core.Tracer):
            raise TypeError("describe() needs concrete actions; call it outside jit")
        values = np.asarray(self._check_actions(actions))

        def convert(a):
            if a.ndim == 2:
                return tuple((self.op_names[int(o)], int(l)) for o, l in a)
            return [convert(sub) for sub in a]

        return convert(values)
