"""Generators of TF sequences (TANDA, Ratner et al., NeurIPS 2017): a distribution G_phi over
sequences tau of L indices into a vocabulary of K TFs (`jaxaug.policies.sequences`),

  `MeanFieldGenerator`:  G(tau) = prod_t softmax(phi_t)[tau_t], independent positions
  `LSTMGenerator`:       G(tau) = prod_t pi_phi(tau_t | tau_<t), an autoregressive LSTM

with ``init``, ``sample`` (sequences with their per-position log-probabilities and entropies),
``score`` (teacher-forced) and ``marginals``.
"""

import dataclasses

import jax
import jax.numpy as jnp

from jaxaug.objectives import reinforce
from jaxaug.policies.controller import PolicyController

@dataclasses.dataclass(frozen=True)
class MeanFieldGenerator:
    """G(tau) = prod_t softmax(phi_t)[tau_t], params ``{"logits": phi [L, K]}`` (zeros: uniform)."""

    num_tfs: int
    length: int

    def init(self, key):
        del key
        return {"logits": jnp.zeros((self.length, self.num_tfs), jnp.float32)}

    def score(self, params, sequences):
        """Per-position ``(log pi(tau_t), H(pi_t))`` of ``sequences`` [N, L], each [N, L]."""
        logits = params["logits"]
        log_p = jax.nn.log_softmax(logits)
        log_probs = log_p[jnp.arange(self.length), sequences]
        entropies = jnp.broadcast_to(reinforce.categorical_entropy(logits), sequences.shape)
        return log_probs, entropies

    def sample(self, params, key, num):
        """``num`` sequences [num, L] int32 with their per-position log-probs and entropies."""
        sequences = jax.random.categorical(key, params["logits"], shape=(num, self.length))
        return (sequences.astype(jnp.int32), *self.score(params, sequences))

    def marginals(self, params, key=None, num_samples=None):
        """p(tau_t = k) [L, K], exact."""
        del key, num_samples
        return jax.nn.softmax(params["logits"])

@dataclasses.dataclass(frozen=True)
class LSTMGenerator:
    """G(tau) = prod_t pi(tau_t | tau_<t), an autoregressive `PolicyController` over K TFs."""

    num_tfs: int
    length: int
    hidden: int = 64
    embedding: int = 16

    @property
    def controller(self):
        return PolicyController(choice_sizes=(self.num_tfs,), num_choices=self.length,
                                hidden=self.hidden, embedding=self.embedding)

    def init(self, key):
        init_key, sample_key = jax.random.split(key)
        return self.controller.init(init_key, sample_key, 1)

    def score(self, params, sequences):
        """Teacher-forced ``(log pi(tau_t | tau_<t), H(pi(. | tau_<t)))``, each [N, L]."""
        _, log_probs, entropies = self.controller.apply(params, jax.random.key(0),
                                                        sequences.shape[0], sequences)
        return log_probs, entropies

    def sample(self, params, key, num):
        return self.controller.apply(params, key, num)

    def marginals(self, params, key, num_samples=4096):
        """p(tau_t = k) [L, K], estimated from the frequencies in ``num_samples`` samples."""
        sequences, _, _ = self.sample(params, key, num_samples)
        return jnp.mean(jax.nn.one_hot(sequences, self.num_tfs), axis=0)
