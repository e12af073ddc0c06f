"""Experience storage apart from the updates: DQN's replay buffer and PPO's rollouts.

`ReplayBuffer` keeps the last `capacity` transitions for off-policy sampling
and round-trips through the run's resume file. `collect_rollout` steps a
vector of environments with the current policy for PPO's on-policy update,
and `gae` turns its rewards and values into advantages.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from zoo.rl.envs import Spaces, env_action
from zoo.rl.networks import NumpyMLP, sample_actions

# (rewards, done) of one vector step, for the log's training-episode returns
RewardSink = Callable[[np.ndarray, np.ndarray], None]


class ReplayBuffer:
    """A ring buffer of (observation, action, reward, terminated, next observation), sampled uniformly.

    `state()` holds the arrays and the count stored so far under the resume
    file's names; a buffer built from them continues where that one stopped.
    """

    def __init__(self, capacity: int, observation_size: int, saved: dict[str, np.ndarray] | None = None):
        saved = saved or {}
        fields = (
            ("observations", (capacity, observation_size), np.float32),
            ("next_observations", (capacity, observation_size), np.float32),
            ("actions", (capacity,), np.int64),
            ("rewards", (capacity,), np.float32),
            ("terminated", (capacity,), np.float32),
        )
        self.arrays = {name: saved.get(name, np.zeros(shape, dtype)) for name, shape, dtype in fields}
        self.capacity = capacity
        self.stored = int(saved.get("stored", 0))  # ever added, so the ring position survives a resume

    def add(self, observations, actions, rewards, terminated, next_observations) -> None:
        """One transition per environment of a vector step, overwriting the oldest when full."""
        slots = (self.stored + np.arange(len(actions))) % self.capacity
        for name, value in (
            ("observations", observations),
            ("next_observations", next_observations),
            ("actions", actions),
            ("rewards", rewards),
            ("terminated", terminated),
        ):
            self.arrays[name][slots] = value
        self.stored += len(actions)

    def sample(self, rng: np.random.Generator, batch_size: int) -> dict[str, np.ndarray]:
        index = rng.integers(min(self.stored, self.capacity), size=batch_size)
        return {name: values[index] for name, values in self.arrays.items()}

    def state(self) -> dict[str, np.ndarray]:
        return {**self.arrays, "stored": np.array(self.stored)}


@dataclasses.dataclass
class Rollout:
    """`steps` transitions of each of `envs` environments, as (steps, envs, ...) arrays."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    done: np.ndarray
    truncations: list  # (t, env, final observation) of episodes cut by a time limit, to bootstrap from
    last_observations: np.ndarray


def collect_rollout(
    env,
    spaces: Spaces,
    policy: NumpyMLP,
    observations: np.ndarray,
    steps: int,
    rng: np.random.Generator,
    record_rewards: RewardSink,
) -> Rollout:
    """Step the vector env `steps` times from `observations`, sampling actions from `policy`."""
    n = len(observations)
    action_shape = () if spaces.discrete else (spaces.action_size,)
    rollout = Rollout(
        np.zeros((steps, n, spaces.observation_size), np.float32),
        np.zeros((steps, n, *action_shape), np.float32),
        np.zeros((steps, n), np.float32),
        np.zeros((steps, n), np.float32),
        [],
        observations,
    )
    for t in range(steps):
        actions = sample_actions(spaces, policy(observations), rng)
        next_observations, rewards, terminated, truncated, info = env.step(env_action(spaces, actions))
        done = terminated | truncated
        rollout.observations[t], rollout.actions[t], rollout.rewards[t], rollout.done[t] = (
            observations,
            actions,
            rewards,
            done,
        )
        rollout.truncations += [(t, i, info["final_obs"][i]) for i in np.flatnonzero(truncated & ~terminated)]
        record_rewards(rewards, done)
        observations = next_observations.astype(np.float32)
    rollout.last_observations = observations
    return rollout


def gae(rewards, values, done, last_values, gamma: float, lam: float) -> np.ndarray:
    """Generalised advantage estimates for (T, N) arrays; `done[t]` cuts the bootstrap after step t."""
    advantages = np.zeros_like(rewards)
    running = np.zeros_like(last_values)
    for t in reversed(range(len(rewards))):
        next_values = last_values if t == len(rewards) - 1 else values[t + 1]
        delta = rewards[t] + gamma * next_values * (1 - done[t]) - values[t]
        running = delta + gamma * lam * (1 - done[t]) * running
        advantages[t] = running
    return advantages
