"""An autoregressive LSTM controller that samples discrete augmentation policies (Adversarial
AutoAugment): a sequence of choices, each a categorical over the sizes in ``choice_sizes`` taken
in turn, with the embedding of every choice fed to the next LSTM step.

With the defaults, one policy is 5 sub-policies x 2 ops x (op type over 16, magnitude over 10):
20 choices alternating between a 16-way and a 10-way head. Sampling uses ``jax.random`` inside the
module, so it stays under jit; the returned log-probabilities are differentiable in the params,
which is all REINFORCE (`jaxaug.objectives.reinforce`) needs. The choices run as a ``scan`` over
groups of one choice per head, so the program (and its compile time) does not grow with the
number of choices.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class _ChoiceGroup(nn.Module):
    """One choice per head, in turn: ``((carry, inputs), (keys [G], given [M, G] | None)) ->
    ((carry, inputs), (actions, log_probs, entropies) each [M, G])``."""

    choice_sizes: tuple[int, ...]
    hidden: int
    embedding: int

    @nn.compact
    def __call__(self, state, xs):
        (carry, inputs), (keys, given) = state, xs
        cell = nn.OptimizedLSTMCell(self.hidden, name="lstm")
        actions, log_probs, entropies = [], [], []
        for kind, size in enumerate(self.choice_sizes):
            carry, out = cell(carry, inputs)
            logits = nn.Dense(size, name=f"head_{kind}")(out)
            action = jax.random.categorical(keys[kind], logits) if given is None else given[:, kind]
            log_p = jax.nn.log_softmax(logits)
            actions.append(action.astype(jnp.int32))
            log_probs.append(jnp.take_along_axis(log_p, action[:, None], axis=1)[:, 0])
            entropies.append(-jnp.sum(jnp.exp(log_p) * log_p, axis=-1))
            inputs = nn.Embed(size, self.embedding, name=f"embed_{kind}")(action)
        return (carry, inputs), tuple(jnp.stack(v, 1) for v in (actions, log_probs, entropies))


class PolicyController(nn.Module):
    """``controller.apply(params, key, num_policies)`` -> ``(actions [M, T] int32, log_probs
    [M, T], entropies [M, T])``, T = ``num_choices`` (a multiple of ``len(choice_sizes)``);
    choice t has ``choice_sizes[t % len]`` options. Given ``actions`` [M, T], the controller is
    teacher-forced along them instead of sampling: their log-probabilities under the current
    params (the key is then unused)."""

    choice_sizes: tuple[int, ...] = (16, 10)
    num_choices: int = 20
    hidden: int = 100
    embedding: int = 32

    @nn.compact
    def __call__(self, key: jax.Array, num_policies: int, actions: jax.Array | None = None
                 ) -> tuple[jax.Array, jax.Array, jax.Array]:
        group = len(self.choice_sizes)
        if self.num_choices % group:
            raise ValueError(f"PolicyController: num_choices {self.num_choices} is not a "
                             f"multiple of the {group} heads of choice_sizes {self.choice_sizes}")
        steps = self.num_choices // group
        start = self.param("start", nn.initializers.normal(0.1), (self.embedding,))
        inputs = jnp.broadcast_to(start, (num_policies, self.embedding))
        carry = nn.OptimizedLSTMCell(self.hidden, parent=None).initialize_carry(
            jax.random.key(0), inputs.shape)
        keys = jax.random.split(key, self.num_choices).reshape(steps, group)
        given = None
        if actions is not None:
            given = jnp.moveaxis(actions.reshape(num_policies, steps, group), 1, 0)
        scan = nn.scan(_ChoiceGroup, variable_broadcast="params", split_rngs={"params": False},
                       length=steps)
        _, outs = scan(self.choice_sizes, self.hidden, self.embedding, name="choices")(
            (carry, inputs), (keys, given))
        return tuple(jnp.moveaxis(v, 0, 1).reshape(num_policies, self.num_choices) for v in outs)
