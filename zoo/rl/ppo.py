"""PPO: a clipped policy-gradient update on on-policy rollouts of many environments.

PPO (Schulman et al., "Proximal Policy Optimization Algorithms", 2017) with the
clipped surrogate objective, generalised advantage estimation (GAE, Schulman
et al., ICLR 2016), bootstrapping of time-limit truncations and a learning rate
that falls linearly to zero, as in RL Baselines3 Zoo's recipes. Discrete actions
get a categorical policy, Box actions a diagonal Gaussian.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops

from zoo import harness
from zoo.rl.buffers import Rollout, collect_rollout, gae
from zoo.rl.envs import Spaces
from zoo.rl.networks import NumpyMLP
from zoo.rl.training import AgentConfig, Checkpoints, optimizer_arrays, start_envs, start_model


@dataclasses.dataclass
class PPOConfig(AgentConfig):
    """PPO's hyper-parameters: the common ones, then the rollouts', the updates' and the loss's."""

    algo: str = "ppo"
    rollout_steps: int = 128  # steps per environment between updates
    epochs_per_update: int = 10
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    entropy_coef: float = 0.0
    value_coef: float = 0.5


PRESETS = {"quick": PPOConfig(), "full": PPOConfig(steps=1_000_000)}

# RL Baselines3 Zoo's tuned hyper-parameters (hyperparams/ppo.yml), per environment; they replace the
# preset's defaults. Other environments train with the defaults.
RECIPES = {
    "CartPole-v1": dict(
        envs=8,
        rollout_steps=32,
        batch_size=256,
        gae_lambda=0.8,
        gamma=0.98,
        epochs_per_update=20,
        entropy_coef=0.0,
        learning_rate=1e-3,
    ),
    "LunarLander-v3": dict(
        envs=16,
        rollout_steps=1024,
        batch_size=64,
        gae_lambda=0.98,
        gamma=0.999,
        epochs_per_update=4,
        entropy_coef=0.01,
        eval_every=50_000,
        eval_episodes=20,
    ),
}


def log_prob_and_entropy(spaces: Spaces, params, actions):
    """Log-probability of `actions` (N, k) and entropy under the policy with `params`, in keras.ops."""
    if spaces.discrete:
        log_probs = ops.log_softmax(params, axis=-1)
        taken = ops.sum(log_probs * ops.one_hot(ops.cast(actions[:, 0], "int32"), spaces.action_size), axis=-1)
        return taken, -ops.sum(ops.exp(log_probs) * log_probs, axis=-1)
    means, log_std = params[:, : spaces.action_size], params[:, spaces.action_size :]
    z = (actions - means) / ops.exp(log_std)
    log_prob = ops.sum(-0.5 * ops.square(z) - log_std - 0.5 * np.log(2 * np.pi), axis=-1)
    return log_prob, ops.sum(log_std + 0.5 * np.log(2 * np.pi * np.e), axis=-1)


def ppo_loss(spaces: Spaces, config: PPOConfig):
    """Clipped surrogate + value error - entropy bonus. y_true holds [action(s), old log-prob, advantage, return]."""
    k = 1 if spaces.discrete else spaces.action_size

    def loss(y_true, y_pred):
        actions, old_log_prob, advantage, returns = y_true[:, :k], y_true[:, k], y_true[:, k + 1], y_true[:, k + 2]
        log_prob, entropy = log_prob_and_entropy(spaces, y_pred[:, :-1], actions)
        advantage = (advantage - ops.mean(advantage)) / (ops.std(advantage) + 1e-8)
        ratio = ops.exp(log_prob - old_log_prob)
        surrogate = ops.minimum(
            ratio * advantage, ops.clip(ratio, 1 - config.clip_range, 1 + config.clip_range) * advantage
        )
        return -surrogate + config.value_coef * ops.square(returns - y_pred[:, -1]) - config.entropy_coef * entropy

    return loss


def _predict(model: keras.Model, observations: np.ndarray) -> np.ndarray:
    return ops.convert_to_numpy(model(observations, training=False))


def ppo_targets(
    model: keras.Model, rollout: Rollout, spaces: Spaces, config: PPOConfig
) -> tuple[np.ndarray, np.ndarray]:
    """(observations, y_true) of a rollout: actions, old log-probabilities, GAE advantages and returns."""
    steps, n = rollout.rewards.shape
    size = steps * n
    observations = rollout.observations.reshape(size, -1)
    # One batched pass gives the values and old log-probabilities of the whole rollout.
    outputs = _predict(model, np.concatenate([observations, rollout.last_observations]))
    values = outputs[:size, -1].reshape(steps, n)
    rewards = rollout.rewards.copy()
    if rollout.truncations:
        final_values = _predict(model, np.stack([o for _, _, o in rollout.truncations]).astype(np.float32))[:, -1]
        for (t, i, _), value in zip(rollout.truncations, final_values):
            rewards[t, i] += config.gamma * value
    advantages = gae(rewards, values, rollout.done, outputs[size:, -1], config.gamma, config.gae_lambda)
    actions = rollout.actions.reshape(size, -1)
    old_log_prob = ops.convert_to_numpy(log_prob_and_entropy(spaces, outputs[:size, :-1], actions)[0])
    targets = np.concatenate(
        [actions, old_log_prob[:, None], advantages.reshape(size, 1), (advantages + values).reshape(size, 1)], axis=1
    )
    return observations, targets.astype(np.float32)


def _update(
    model: keras.Model, inputs: np.ndarray, targets: np.ndarray, batch_size: int, epochs: int, rng: np.random.Generator
) -> list[float]:
    """`epochs` passes over the rollout in shuffled minibatches; their losses."""
    losses = []
    for _ in range(epochs):
        order = rng.permutation(len(inputs))
        for start in range(0, len(inputs) - batch_size + 1, batch_size):
            batch = order[start : start + batch_size]
            losses.append(float(model.train_on_batch(inputs[batch], targets[batch])))
    return losses


def _policy_stats(model: keras.Model, spaces: Spaces, inputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """The updated policy's mean entropy and its approximate KL divergence from the rollout's policy."""
    k = targets.shape[1] - 3
    new_log_prob, entropy = log_prob_and_entropy(spaces, _predict(model, inputs)[:, :-1], targets[:, :k])
    return {
        "entropy": float(ops.mean(entropy)),
        "approx_kl": float(np.mean(targets[:, k] - ops.convert_to_numpy(new_log_prob))),
    }


def train(run: harness.Run, spaces: Spaces, seed: int) -> keras.Model:
    """The PPO loop over `run.config` (a PPOConfig), from the run's last round when resuming."""
    config = run.config
    rollout_size = config.envs * config.rollout_steps
    # Equal minibatches (one compiled train step); each epoch's shuffle leaves out a different remainder.
    batch_size = min(config.batch_size, rollout_size)
    updates = max(1, config.steps // rollout_size)  # whole rollouts, within the budget
    log = Checkpoints(run, spaces, updates * rollout_size)
    total_batches = updates * config.epochs_per_update * (rollout_size // batch_size)
    model, _ = start_model(
        log,
        spaces,
        ppo_loss(spaces, config),
        keras.optimizers.schedules.PolynomialDecay(config.learning_rate, total_batches, 0.0),
    )
    rng, env, observations = start_envs(log, seed)
    try:
        while log.step < log.total_steps:
            rollout = collect_rollout(
                env,
                spaces,
                NumpyMLP(model.get_layer("policy")),
                observations,
                config.rollout_steps,
                rng,
                log.record_rewards,
            )
            observations = rollout.last_observations
            log.step += rollout_size
            inputs, targets = ppo_targets(model, rollout, spaces, config)
            losses = _update(model, inputs, targets, batch_size, config.epochs_per_update, rng)
            if log.due():
                stats = _policy_stats(model, spaces, inputs, targets)
                log.save(model, optimizer_arrays(model), loss=np.mean(losses), **stats)
    finally:
        env.close()
    return model
