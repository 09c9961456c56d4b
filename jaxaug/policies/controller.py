"""An autoregressive LSTM controller that samples discrete augmentation policies (Adversarial
AutoAugment): a sequence of choices, each a categorical over the sizes in ``choice_sizes`` taken
in turn, with the embedding of every choice fed to the next LSTM step.

With the defaults, one policy is 5 sub-policies x 2 ops x (op type over 16, magnitude over 10):
20 choices alternating between a 16-way and a 10-way head. Sampling uses ``jax.random`` inside the
module, so it stays under jit; the returned log-probabilities are differentiable in the params,
which is all REINFORCE (`jaxaug.objectives.reinforce`) needs.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class PolicyController(nn.Module):
    """``controller.apply(params, key, num_policies)`` -> ``(actions [M, T] int32, log_probs
    [M, T], entropies [M, T])``, T = ``num_choices``; choice t has ``choice_sizes[t % len]``
    options."""

    choice_sizes: tuple[int, ...] = (16, 10)
    num_choices: int = 20
    hidden: int = 100
    embedding: int = 32

    @nn.compact
    def __call__(self, key: jax.Array, num_policies: int):
        cell = nn.OptimizedLSTMCell(self.hidden, name="lstm")
        heads = [nn.Dense(size, name=f"head_{i}") for i, size in enumerate(self.choice_sizes)]
        embeddings = [nn.Embed(size, self.embedding, name=f"embed_{i}")
                      for i, size in enumerate(self.choice_sizes)]
        start = self.param("start", nn.initializers.normal(0.1), (self.embedding,))
        inputs = jnp.broadcast_to(start, (num_policies, self.embedding))
        carry = cell.initialize_carry(jax.random.key(0), inputs.shape)
        actions, log_probs, entropies = [], [], []
        for t, step_key in enumerate(jax.random.split(key, self.num_choices)):
            kind = t % len(self.choice_sizes)
            carry, out = cell(carry, inputs)
            logits = heads[kind](out)
            action = jax.random.categorical(step_key, logits)
            log_p = jax.nn.log_softmax(logits)
            actions.append(action)
            log_probs.append(jnp.take_along_axis(log_p, action[:, None], axis=1)[:, 0])
            entropies.append(-jnp.sum(jnp.exp(log_p) * log_p, axis=-1))
            inputs = embeddings[kind](action)
        return (jnp.stack(actions, 1).astype(jnp.int32), jnp.stack(log_probs, 1),
                jnp.stack(entropies, 1))
