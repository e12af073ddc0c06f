"""Double DQN: action values from a replay buffer, against a target network.

DQN (Mnih et al., Nature 2015) with the Huber loss, and double DQN's target
(van Hasselt et al., AAAI 2016): the online network picks the next action, the
target network values it. Epsilon-greedy exploration falls linearly over the
first `exploration_steps` of training. Discrete actions only.
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import ops

from zoo import harness
from zoo.rl.buffers import ReplayBuffer
from zoo.rl.envs import Spaces
from zoo.rl.networks import NumpyMLP
from zoo.rl.training import AgentConfig, Checkpoints, optimizer_arrays, start_envs, start_model


@dataclasses.dataclass
class DQNConfig(AgentConfig):
    """DQN's hyper-parameters: the common ones, then the replay buffer's, the target network's, exploration's."""

    algo: str = "dqn"
    buffer_size: int = 100_000
    learning_starts: int = 1_000
    train_every: int = 4  # environment steps between training phases
    gradient_steps: int = 1  # per training phase
    target_every: int = 1_000  # environment steps between target-network copies
    exploration_steps: float = 0.1  # fraction of training over which epsilon falls to its final value
    final_epsilon: float = 0.05


PRESETS = {"quick": DQNConfig(), "full": DQNConfig(steps=1_000_000)}

# RL Baselines3 Zoo's tuned hyper-parameters (hyperparams/dqn.yml), per environment; they replace the
# preset's defaults. Other environments train with the defaults.
RECIPES = {
    "CartPole-v1": dict(
        envs=1,
        hidden=(256, 256),
        learning_rate=2.3e-3,
        batch_size=64,
        buffer_size=100_000,
        learning_starts=1_000,
        gamma=0.99,
        train_every=256,
        gradient_steps=128,
        target_every=10,
        exploration_steps=0.16,
        final_epsilon=0.04,
        max_grad_norm=10.0,
    ),
}


def double_dqn_loss(n_actions: int, gamma: float):
    """Huber loss of Q(s, a) against r + gamma * Q_target(s', argmax_a' Q(s', a')), the double-DQN target.

    The batch stacks the states over the next states, so one forward pass of the
    online network gives both the Q(s) being trained and the Q(s') that picks the
    next action. y_true's first half holds [action, reward, not terminal, Q_target(s', .)].
    """

    def loss(y_true, q_values):
        half = ops.shape(q_values)[0] // 2
        q, next_q, y = q_values[:half], ops.stop_gradient(q_values[half:]), y_true[:half]
        next_values = ops.sum(y[:, 3:] * ops.one_hot(ops.argmax(next_q, axis=-1), n_actions), axis=-1)
        targets = y[:, 1] + gamma * y[:, 2] * next_values
        taken = ops.sum(q * ops.one_hot(ops.cast(y[:, 0], "int32"), n_actions), axis=-1)
        error = ops.abs(targets - taken)
        return ops.where(error < 1.0, 0.5 * ops.square(error), error - 0.5)

    return loss


def _q_network(model: keras.Model) -> NumpyMLP:
    return NumpyMLP(model.get_layer("q_values"))


def _target_network(model: keras.Model, saved: dict[str, np.ndarray]) -> NumpyMLP:
    """The target network: a copy of the online one, or the copy saved with the run when resuming."""
    target = _q_network(model)
    if saved:
        target.steps = [
            (s[0], saved[f"target_kernel_{i}"], saved[f"target_bias_{i}"]) for i, s in enumerate(target.steps)
        ]
    return target


def _target_arrays(target: NumpyMLP) -> dict[str, np.ndarray]:
    return {
        **{f"target_kernel_{i}": s[1] for i, s in enumerate(target.steps)},
        **{f"target_bias_{i}": s[2] for i, s in enumerate(target.steps)},
    }


def _epsilon(config: DQNConfig, step: int) -> float:
    return max(config.final_epsilon, 1 - (1 - config.final_epsilon) * step / (config.exploration_steps * config.steps))


def _explore(q_values: np.ndarray, epsilon: float, spaces: Spaces, rng: np.random.Generator) -> np.ndarray:
    """Epsilon-greedy: the argmax action, or a uniformly random one with probability epsilon."""
    actions = q_values.argmax(axis=-1)
    explore = rng.random(len(actions)) < epsilon
    actions[explore] = rng.integers(spaces.action_size, size=explore.sum())
    return actions


def _final_observations(next_observations: np.ndarray, done: np.ndarray, info: dict) -> np.ndarray:
    """The observations each transition ended in: a finished episode's last one, not the next episode's first."""
    final = next_observations.copy()
    if done.any():
        final[done] = np.stack(info["final_obs"][done])
    return final


def _train_phase(
    model: keras.Model, buffer: ReplayBuffer, target: NumpyMLP, config: DQNConfig, rng: np.random.Generator
) -> list[float]:
    """`gradient_steps` minibatch updates on replayed transitions; their losses."""
    losses = []
    for _ in range(config.gradient_steps):
        batch = buffer.sample(rng, config.batch_size)
        y = np.concatenate(
            [
                batch["actions"][:, None],
                batch["rewards"][:, None],
                1 - batch["terminated"][:, None],
                target(batch["next_observations"]),
            ],
            axis=1,
        )
        losses.append(
            float(
                model.train_on_batch(
                    np.concatenate([batch["observations"], batch["next_observations"]]),
                    np.concatenate([y, np.zeros_like(y)]).astype(np.float32),
                )
            )
        )
    return losses


def _crossed(previous: int, step: int, every: int) -> bool:
    """Whether a vector step from `previous` to `step` passed a multiple of `every`."""
    return step // every > previous // every


def train(run: harness.Run, spaces: Spaces, seed: int) -> keras.Model:
    """The DQN loop over `run.config` (a DQNConfig), from the run's last round when resuming."""
    config = run.config
    n = config.envs
    log = Checkpoints(run, spaces, max(n, config.steps // n * n))  # whole vector steps, within the budget
    model, saved = start_model(log, spaces, double_dqn_loss(spaces.action_size, config.gamma), config.learning_rate)
    buffer = ReplayBuffer(config.buffer_size, spaces.observation_size, saved)
    target = _target_network(model, saved)
    rng, env, observations = start_envs(log, seed)
    online, losses = _q_network(model), []
    try:
        while log.step < log.total_steps:
            epsilon = _epsilon(config, log.step)
            actions = _explore(online(observations), epsilon, spaces, rng)
            next_observations, rewards, terminated, truncated, info = env.step(actions)
            done = terminated | truncated
            buffer.add(observations, actions, rewards, terminated, _final_observations(next_observations, done, info))
            log.record_rewards(rewards, done)
            observations = next_observations.astype(np.float32)
            previous, log.step = log.step, log.step + n
            if log.step >= config.learning_starts and _crossed(previous, log.step, config.train_every):
                losses += _train_phase(model, buffer, target, config, rng)
                online = _q_network(model)
            if _crossed(previous, log.step, config.target_every):
                target = _q_network(model)
            if log.due():
                log.save(
                    model,
                    {**buffer.state(), **optimizer_arrays(model), **_target_arrays(target)},
                    loss=np.mean(losses) if losses else np.nan,
                    epsilon=epsilon,
                )
                losses = []
    finally:
        env.close()
    return model
