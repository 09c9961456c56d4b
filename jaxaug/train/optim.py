"""The target network's optimizer: SGD with Nesterov momentum, coupled weight decay, cosine decay."""

import optax


def learning_rate_schedule(config, steps_per_epoch: int) -> optax.Schedule:
    """Linear warm-up for ``warmup_epochs`` then cosine decay to 0 at the last step.

    lr(t) = lr_0 * (1 + cos(pi * (t - w) / (T - w))) / 2 after warm-up, T = epochs * steps_per_epoch.
    """
    opt = config.optimizer
    total_steps = config.epochs * steps_per_epoch
    warmup_steps = int(opt.warmup_epochs * steps_per_epoch)
    if warmup_steps == 0:
        return optax.cosine_decay_schedule(opt.lr, total_steps)
    return optax.warmup_cosine_decay_schedule(0.0, opt.lr, warmup_steps, total_steps, end_value=0.0)


def make_optimizer(config, steps_per_epoch: int) -> optax.GradientTransformation:
    """SGD as in the papers' PyTorch code: g <- g + wd * w before the (Nesterov) momentum."""
    opt = config.optimizer
    return optax.chain(
        optax.add_decayed_weights(opt.weight_decay),
        optax.sgd(learning_rate_schedule(config, steps_per_epoch), opt.momentum, nesterov=opt.nesterov),
    )
