"""Deep RL agents for any gymnasium environment: DQN and PPO.

DQN (Mnih et al., "Human-level control through deep reinforcement learning",
Nature 2015) learns action values from a replay buffer against a target
network, with the Huber loss; we add double DQN (van Hasselt et al., AAAI
2016): the online network picks the next action, the target network values it.
Discrete actions only.

PPO (Schulman et al., "Proximal Policy Optimization Algorithms", 2017) learns
a policy and a value function from on-policy rollouts of many environments
stepped together (`gymnasium.vector`), with the clipped surrogate objective
and generalised advantage estimation (GAE, Schulman et al., ICLR 2016).
Discrete actions get a categorical policy, Box actions a diagonal Gaussian.

Both losses are Keras loss functions in `keras.ops`, trained with
`train_on_batch`, so the same code trains under TensorFlow and JAX and the
`.keras` files load under either. Acting, the step that runs once per
environment step, does not go through Keras at all: the small MLPs' weights
are copied into NumPy (`NumpyMLP`), which is tens of times faster than
`model(state)` per step (`bench/rl_acting.py` measures it).

Environments: gymnasium's classic control and Box2D (offline wheels).
Headline metric: mean (and standard deviation) of the undiscounted return over
100 seeded evaluation episodes with the greedy policy, beside a random policy's:

    CartPole-v1     >= 475 within 50,000 environment steps (DQN and PPO)
    LunarLander-v3  >= 200 (Stable-Baselines3's PPO reaches 242 after 1M steps)

Hyper-parameters follow RL Baselines3 Zoo's tuned recipes (`RECIPES`).

    zoo train rl --algo ppo --env CartPole-v1 --steps 50000 --seed 0
    zoo train rl --algo ppo --env LunarLander-v3 --preset full --envs 16 --async-envs
    zoo evaluate rl --env LunarLander-v3 --episodes 100
    zoo demo rl --env CartPole-v1 -o episode.gif
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from zoo import harness, registry
from zoo.errors import BadInput
from zoo.files import atomic_output
from zoo.rl.envs import (Spaces, check_gif_path, env_action, env_spaces, make_vector_env, record_episode,
                         run_episodes, save_gif)

ALGOS = ("dqn", "ppo")
VALIDATION_SEED = 1_000_000  # checkpoint selection plays other episodes than `zoo evaluate` (seeds 0..)


@dataclasses.dataclass
class Config:
    algo: str = "ppo"
    env: str = "CartPole-v1"
    steps: int = 50_000  # environment steps, all environments together
    envs: int = 8  # environments stepped together
    async_envs: bool = False  # one process per environment (worth it for slow envs on many cores)
    hidden: tuple[int, ...] = (64, 64)
    learning_rate: float = 3e-4
    gamma: float = 0.99
    batch_size: int = 64
    max_grad_norm: float = 0.5  # gradients are clipped to this global norm
    eval_every: int = 5_000  # environment steps between validation rounds (and checkpoints)
    eval_episodes: int = 10
    # DQN
    buffer_size: int = 100_000
    learning_starts: int = 1_000
    train_every: int = 4  # environment steps between training phases
    gradient_steps: int = 1  # per training phase
    target_every: int = 1_000  # environment steps between target-network copies
    exploration_steps: float = 0.1  # fraction of training over which epsilon falls to its final value
    final_epsilon: float = 0.05
    # PPO
    rollout_steps: int = 128  # steps per environment between updates
    epochs_per_update: int = 10
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    entropy_coef: float = 0.0
    value_coef: float = 0.5


PRESETS = {
    "quick": Config(),
    "full": Config(steps=1_000_000),
}

# RL Baselines3 Zoo's tuned hyper-parameters (hyperparams/{dqn,ppo}.yml), per algorithm and environment;
# they replace the preset's defaults. Other environments train with the defaults.
RECIPES = {
    ("dqn", "CartPole-v1"): dict(envs=1, hidden=(256, 256), learning_rate=2.3e-3, batch_size=64, buffer_size=100_000,
                                 learning_starts=1_000, gamma=0.99, train_every=256, gradient_steps=128,
                                 target_every=10, exploration_steps=0.16, final_epsilon=0.04,
                                 max_grad_norm=10.0),
    ("ppo", "CartPole-v1"): dict(envs=8, rollout_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98,
                                 epochs_per_update=20, entropy_coef=0.0, learning_rate=1e-3),
    ("ppo", "LunarLander-v3"): dict(envs=16, rollout_steps=1024, batch_size=64, gae_lambda=0.98, gamma=0.999,
                                    epochs_per_update=4, entropy_coef=0.01, eval_every=50_000, eval_episodes=20),
}


# -------------------------------------------------------------------- model


@keras.saving.register_keras_serializable(package="zoo")
class DiagonalGaussian(layers.Layer):
    """Appends a learned, state-independent log standard deviation to the action means."""

    def build(self, input_shape):
        self.log_std = self.add_weight(shape=(input_shape[-1],), initializer="zeros", name="log_std")

    def call(self, means):
        return ops.concatenate([means, ops.zeros_like(means) + self.log_std], axis=-1)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], 2 * input_shape[-1])


def _mlp(hidden, activation: str, outputs: int, output_gain: float, name: str) -> list[layers.Layer]:
    """Dense layers with orthogonal initialisation (hidden gain sqrt 2), as in PPO's reference code."""
    stack = [layers.Dense(units, activation=activation, kernel_initializer=keras.initializers.Orthogonal(np.sqrt(2)),
                          name=f"{name}_{i}") for i, units in enumerate(hidden)]
    return stack + [layers.Dense(outputs, kernel_initializer=keras.initializers.Orthogonal(output_gain),
                                 name=f"{name}_out")]


def build_model(config: Config, spaces: Spaces | None = None) -> keras.Model:
    """DQN: observation -> one Q value per action. PPO: observation -> [policy parameters, value].

    PPO's policy and value networks are separate MLPs (named `policy` and
    `value`); the policy outputs logits (discrete) or means and log standard
    deviations (Box). One output tensor lets one Keras loss see both.
    """
    spaces = spaces or env_spaces(config.env)
    observation = keras.Input((spaces.observation_size,), name="observation")
    if config.algo == "dqn":
        if not spaces.discrete:
            raise BadInput(f"{spaces.env_id}: DQN needs a discrete action space; this one is continuous (use --algo ppo)")
        q_values = keras.Sequential(_mlp(config.hidden, "relu", spaces.action_size, 1.0, "q"), name="q_values")
        return keras.Model(observation, q_values(observation), name="dqn")
    policy_layers = _mlp(config.hidden, "tanh", spaces.action_size, 0.01, "policy")
    if not spaces.discrete:
        policy_layers.append(DiagonalGaussian(name="log_std"))
    policy = keras.Sequential(policy_layers, name="policy")
    value = keras.Sequential(_mlp(config.hidden, "tanh", 1, 1.0, "value"), name="value")
    outputs = layers.Concatenate(name="policy_and_value")([policy(observation), value(observation)])
    return keras.Model(observation, outputs, name="ppo")


class NumpyMLP:
    """A snapshot of a Sequential of Dense layers, evaluated in NumPy.

    A 64-unit MLP on a handful of states costs microseconds in NumPy and about
    a millisecond through `model(state)`; acting runs once per environment step,
    so this is where an RL loop's time goes.
    """

    ACTIVATIONS = {"linear": lambda x: x, "relu": lambda x: np.maximum(x, 0), "tanh": np.tanh}

    def __init__(self, stack: keras.Sequential):
        self.steps = []
        for layer in stack.layers:
            if isinstance(layer, DiagonalGaussian):
                self.steps.append(("log_std", ops.convert_to_numpy(layer.log_std)))
            else:
                self.steps.append((self.ACTIVATIONS[layer.activation.__name__], ops.convert_to_numpy(layer.kernel),
                                   ops.convert_to_numpy(layer.bias)))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        for step in self.steps:
            if step[0] == "log_std":
                x = np.concatenate([x, np.broadcast_to(step[1], x.shape)], axis=-1)
            else:
                activation, kernel, bias = step
                x = activation(x @ kernel + bias)
        return x


def algo_of(model: keras.Model) -> str:
    if model.name not in ALGOS:
        raise BadInput(f"model {model.name!r} is not a zoo RL agent (expected one named {' or '.join(ALGOS)})")
    return model.name


def greedy_policy(model: keras.Model, spaces: Spaces):
    """observations -> the agent's best actions: argmax Q, the most likely action, or the Gaussian's mean."""
    algo = algo_of(model)
    net = NumpyMLP(model.get_layer("q_values" if algo == "dqn" else "policy"))
    expected = model.inputs[0].shape[-1]
    if expected != spaces.observation_size or net(np.zeros((1, expected), np.float32)).shape[-1] != (
            spaces.action_size * (1 if spaces.discrete else 2)):
        raise BadInput(f"{spaces.env_id}: this {algo} model was trained on another environment "
                       f"(it takes {expected} observation values)")
    if spaces.discrete:
        return lambda observations: net(observations).argmax(axis=-1)
    return lambda observations: net(observations)[:, :spaces.action_size]


# ------------------------------------------------------------------ losses


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


def log_prob_and_entropy(spaces: Spaces, params, actions):
    """Log-probability of `actions` (N, k) and entropy under the policy with `params`, in keras.ops."""
    if spaces.discrete:
        log_probs = ops.log_softmax(params, axis=-1)
        taken = ops.sum(log_probs * ops.one_hot(ops.cast(actions[:, 0], "int32"), spaces.action_size), axis=-1)
        return taken, -ops.sum(ops.exp(log_probs) * log_probs, axis=-1)
    means, log_std = params[:, :spaces.action_size], params[:, spaces.action_size:]
    z = (actions - means) / ops.exp(log_std)
    log_prob = ops.sum(-0.5 * ops.square(z) - log_std - 0.5 * np.log(2 * np.pi), axis=-1)
    return log_prob, ops.sum(log_std + 0.5 * np.log(2 * np.pi * np.e), axis=-1)


def ppo_loss(spaces: Spaces, config: Config):
    """Clipped surrogate + value error - entropy bonus. y_true holds [action(s), old log-prob, advantage, return]."""
    k = 1 if spaces.discrete else spaces.action_size

    def loss(y_true, y_pred):
        actions, old_log_prob, advantage, returns = y_true[:, :k], y_true[:, k], y_true[:, k + 1], y_true[:, k + 2]
        log_prob, entropy = log_prob_and_entropy(spaces, y_pred[:, :-1], actions)
        advantage = (advantage - ops.mean(advantage)) / (ops.std(advantage) + 1e-8)
        ratio = ops.exp(log_prob - old_log_prob)
        surrogate = ops.minimum(ratio * advantage,
                                ops.clip(ratio, 1 - config.clip_range, 1 + config.clip_range) * advantage)
        return -surrogate + config.value_coef * ops.square(returns - y_pred[:, -1]) - config.entropy_coef * entropy

    return loss


# ------------------------------------------------------------- training


class Checkpoints:
    """Validation rounds, the log, best/last checkpoints and resume state, in the harness's run directory.

    A round plays `eval_episodes` greedy episodes on validation seeds, logs one
    row, saves last.keras (and best.keras when the mean return improves) and
    the loop's own state (optimizer, target network, replay buffer) for --resume.
    """

    def __init__(self, run: harness.Run, spaces: Spaces, total_steps: int):
        self.run, self.spaces, self.config, self.total_steps = run, spaces, run.config, total_steps
        state = run.state() if run.resumed else {}
        self.step, self.round, self.best = state.get("step", 0), state.get("round", 0), state.get("best")
        self.episode_returns: list[float] = []
        self.started, self.steps_at_start = time.time(), self.step
        if run.resumed:
            run.truncate_log(self.round + 1)

    def due(self) -> bool:
        return self.step // self.config.eval_every > self.round or self.step >= self.total_steps

    def finish_episodes(self, returns: np.ndarray, done: np.ndarray) -> None:
        self.episode_returns.extend(float(r) for r in returns[done])

    def save(self, model: keras.Model, arrays: dict[str, np.ndarray], **stats) -> None:
        self.round = max(self.round + 1, self.step // self.config.eval_every)
        returns = run_episodes(self.spaces.env_id, greedy_policy(model, self.spaces), self.config.eval_episodes,
                               VALIDATION_SEED + 1000 * self.round)
        elapsed = time.time() - self.started
        row = {"epoch": self.round, "step": self.step, "val_return": returns.mean(),
               **({"return": np.mean(self.episode_returns[-100:])} if self.episode_returns else {}),
               **stats, "steps_per_second": (self.step - self.steps_at_start) / max(elapsed, 1e-9), "time": elapsed}
        self.run.log(row)
        if self.best is None or returns.mean() > self.best:
            self.best = float(returns.mean())
            self.run.save_checkpoint(model, "best")
        self.run.save_checkpoint(model, "last")
        with atomic_output(self.run.file("resume.npz"), force=True) as tmp:
            np.savez(tmp, **arrays)
        self.run.save_state(step=self.step, round=self.round, best=self.best, finished=self.step >= self.total_steps)
        print(f"step {self.step}: validation return {returns.mean():.1f} +- {returns.std():.1f}"
              + (f", training episodes {row['return']:.1f}" if "return" in row else ""), flush=True)

    def resume_arrays(self) -> dict[str, np.ndarray]:
        if not self.run.resumed or not self.run.file("resume.npz").exists():
            return {}
        with np.load(self.run.file("resume.npz")) as saved:
            return dict(saved)


def _optimizer_arrays(model: keras.Model) -> dict[str, np.ndarray]:
    return {f"optimizer_{i}": ops.convert_to_numpy(v) for i, v in enumerate(model.optimizer.variables)}


def _restore_optimizer(model: keras.Model, arrays: dict[str, np.ndarray]) -> None:
    model.optimizer.build(model.trainable_variables)
    for i, variable in enumerate(model.optimizer.variables):
        variable.assign(arrays[f"optimizer_{i}"])


def _start_model(run: harness.Run, spaces: Spaces, loss, learning_rate) -> keras.Model:
    """A new model, or the last checkpoint when resuming; the loop restores the optimizer's state."""
    config = run.config
    model = harness.load_model(run.file("last.keras")) if run.resumed and run.file("last.keras").exists() \
        else build_model(config, spaces)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate, epsilon=1e-5, global_clipnorm=config.max_grad_norm),
                  loss=loss)
    return model


def train_dqn(run: harness.Run, spaces: Spaces, seed: int) -> keras.Model:
    config = run.config
    n = config.envs
    log = Checkpoints(run, spaces, max(n, config.steps // n * n))  # whole vector steps, within the budget
    model = _start_model(run, spaces, double_dqn_loss(spaces.action_size, config.gamma),
                         config.learning_rate)
    saved = log.resume_arrays()
    if saved:
        _restore_optimizer(model, saved)
    size = spaces.observation_size
    buffer = {name: saved.get(name, np.zeros(shape, dtype)) for name, shape, dtype in (
        ("observations", (config.buffer_size, size), np.float32), ("next_observations", (config.buffer_size, size), np.float32),
        ("actions", (config.buffer_size,), np.int64), ("rewards", (config.buffer_size,), np.float32),
        ("terminated", (config.buffer_size,), np.float32))}
    stored = int(saved.get("stored", 0))
    target = NumpyMLP(model.get_layer("q_values"))
    if saved:
        target.steps = [(s[0], saved[f"target_kernel_{i}"], saved[f"target_bias_{i}"]) for i, s in enumerate(target.steps)]
    rng = np.random.default_rng([seed, log.step])
    env = make_vector_env(spaces.env_id, n, config.async_envs)
    observations = env.reset(seed=seed + log.step)[0].astype(np.float32)
    episode_returns = np.zeros(n)
    online = NumpyMLP(model.get_layer("q_values"))
    losses = []
    try:
        while log.step < log.total_steps:
            epsilon = max(config.final_epsilon,
                          1 - (1 - config.final_epsilon) * log.step / (config.exploration_steps * config.steps))
            actions = online(observations).argmax(axis=-1)
            explore = rng.random(n) < epsilon
            actions[explore] = rng.integers(spaces.action_size, size=explore.sum())
            next_observations, rewards, terminated, truncated, info = env.step(actions)
            done = terminated | truncated
            final = next_observations.copy()
            if done.any():
                final[done] = np.stack(info["final_obs"][done])
            slots = (stored + np.arange(n)) % config.buffer_size
            for name, value in (("observations", observations), ("next_observations", final), ("actions", actions),
                                ("rewards", rewards), ("terminated", terminated)):
                buffer[name][slots] = value
            stored += n
            episode_returns += rewards
            log.finish_episodes(episode_returns, done)
            episode_returns[done] = 0
            observations = next_observations.astype(np.float32)
            previous, log.step = log.step, log.step + n
            if log.step >= config.learning_starts and log.step // config.train_every > previous // config.train_every:
                for _ in range(config.gradient_steps):
                    index = rng.integers(min(stored, config.buffer_size), size=config.batch_size)
                    batch = {name: values[index] for name, values in buffer.items()}
                    y = np.concatenate([batch["actions"][:, None], batch["rewards"][:, None],
                                        1 - batch["terminated"][:, None], target(batch["next_observations"])], axis=1)
                    losses.append(float(model.train_on_batch(
                        np.concatenate([batch["observations"], batch["next_observations"]]),
                        np.concatenate([y, np.zeros_like(y)]).astype(np.float32))))
                online = NumpyMLP(model.get_layer("q_values"))
            if log.step // config.target_every > previous // config.target_every:
                target = NumpyMLP(model.get_layer("q_values"))
            if log.due():
                arrays = {**buffer, "stored": np.array(stored), **_optimizer_arrays(model),
                          **{f"target_kernel_{i}": s[1] for i, s in enumerate(target.steps)},
                          **{f"target_bias_{i}": s[2] for i, s in enumerate(target.steps)}}
                log.save(model, arrays, loss=np.mean(losses) if losses else np.nan, epsilon=epsilon)
                losses = []
    finally:
        env.close()
    return model


def _sample_actions(spaces: Spaces, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw from the policy: Gumbel-max for logits, mean + std * noise for a Gaussian."""
    if spaces.discrete:
        return (params + rng.gumbel(size=params.shape)).argmax(axis=-1)
    means, log_std = params[:, :spaces.action_size], params[:, spaces.action_size:]
    return (means + np.exp(log_std) * rng.standard_normal(means.shape)).astype(np.float32)


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


def _predict(model: keras.Model, observations: np.ndarray) -> np.ndarray:
    return ops.convert_to_numpy(model(observations, training=False))


@dataclasses.dataclass
class Rollout:
    """`steps` transitions of each of `envs` environments, as (steps, envs, ...) arrays."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    done: np.ndarray
    truncations: list  # (t, env, final observation) of episodes cut by a time limit, to bootstrap from
    last_observations: np.ndarray


def collect_rollout(env, spaces: Spaces, policy: NumpyMLP, observations: np.ndarray, steps: int,
                    rng: np.random.Generator, log: Checkpoints, episode_returns: np.ndarray) -> Rollout:
    n = len(observations)
    action_shape = () if spaces.discrete else (spaces.action_size,)
    rollout = Rollout(np.zeros((steps, n, spaces.observation_size), np.float32),
                      np.zeros((steps, n, *action_shape), np.float32), np.zeros((steps, n), np.float32),
                      np.zeros((steps, n), np.float32), [], observations)
    for t in range(steps):
        actions = _sample_actions(spaces, policy(observations), rng)
        next_observations, rewards, terminated, truncated, info = env.step(env_action(spaces, actions))
        done = terminated | truncated
        rollout.observations[t], rollout.actions[t], rollout.rewards[t], rollout.done[t] = (
            observations, actions, rewards, done)
        rollout.truncations += [(t, i, info["final_obs"][i]) for i in np.flatnonzero(truncated & ~terminated)]
        episode_returns += rewards
        log.finish_episodes(episode_returns, done)
        episode_returns[done] = 0
        observations = next_observations.astype(np.float32)
    rollout.last_observations = observations
    return rollout


def ppo_targets(model: keras.Model, rollout: Rollout, spaces: Spaces, config: Config) -> tuple[np.ndarray, np.ndarray]:
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
    targets = np.concatenate([actions, old_log_prob[:, None], advantages.reshape(size, 1),
                              (advantages + values).reshape(size, 1)], axis=1)
    return observations, targets.astype(np.float32)


def train_ppo(run: harness.Run, spaces: Spaces, seed: int) -> keras.Model:
    config = run.config
    n, horizon = config.envs, config.rollout_steps
    rollout_size = n * horizon
    # Equal minibatches (one compiled train step); each epoch's shuffle leaves out a different remainder.
    batch_size = min(config.batch_size, rollout_size)
    updates = max(1, config.steps // rollout_size)  # whole rollouts, within the budget
    log = Checkpoints(run, spaces, updates * rollout_size)
    # The learning rate falls linearly to zero over the run, as in RL Baselines3 Zoo's recipes.
    total_batches = updates * config.epochs_per_update * (rollout_size // batch_size)
    model = _start_model(run, spaces, ppo_loss(spaces, config),
                         keras.optimizers.schedules.PolynomialDecay(config.learning_rate, total_batches, 0.0))
    saved = log.resume_arrays()
    if saved:
        _restore_optimizer(model, saved)
    rng = np.random.default_rng([seed, log.step])
    env = make_vector_env(spaces.env_id, n, config.async_envs)
    observations = env.reset(seed=seed + log.step)[0].astype(np.float32)
    episode_returns = np.zeros(n)
    try:
        while log.step < log.total_steps:
            rollout = collect_rollout(env, spaces, NumpyMLP(model.get_layer("policy")), observations, horizon, rng,
                                      log, episode_returns)
            observations = rollout.last_observations
            log.step += rollout_size
            inputs, targets = ppo_targets(model, rollout, spaces, config)
            losses = []
            for _ in range(config.epochs_per_update):
                order = rng.permutation(rollout_size)
                for start in range(0, rollout_size - batch_size + 1, batch_size):
                    batch = order[start:start + batch_size]
                    losses.append(float(model.train_on_batch(inputs[batch], targets[batch])))
            if log.due():
                k = targets.shape[1] - 3
                new_log_prob, entropy = log_prob_and_entropy(spaces, _predict(model, inputs)[:, :-1], targets[:, :k])
                log.save(model, _optimizer_arrays(model), loss=np.mean(losses), entropy=float(ops.mean(entropy)),
                         approx_kl=float(np.mean(targets[:, k] - ops.convert_to_numpy(new_log_prob))))
    finally:
        env.close()
    return model


# ---------------------------------------------------------- CLI entry points


def _check_algo(algo: str) -> str:
    if algo not in ALGOS:
        raise BadInput(f"--algo {algo}: unknown algorithm (choose {' or '.join(ALGOS)})")
    return algo


def make_config(preset: str, algo: str, env: str, steps: int | None = None, envs: int | None = None,
                async_envs: bool = False) -> Config:
    """The preset, then the tuned recipe for (algo, env), then the command line's overrides."""
    config = dataclasses.replace(PRESETS[preset], algo=_check_algo(algo), env=env,
                                 **RECIPES.get((algo, env), {}), async_envs=async_envs)
    overrides = {name: value for name, value in (("steps", steps), ("envs", envs)) if value is not None}
    return dataclasses.replace(config, **overrides)


def train(*, preset: str, out: Path | None, resume: bool, seed: int, algo: str, env: str, steps: int | None,
          envs: int | None, async_envs: bool) -> dict:
    config = make_config(preset, algo, env, steps, envs, async_envs)
    spaces = env_spaces(config.env)
    build_model(config, spaces)  # fails early (DQN on a Box action space) before a run directory exists
    run = harness.start_run(f"rl-{config.algo}-{config.env}", config, out, resume, seed)
    if resume and steps is not None:  # --steps may extend a resumed run, like --epochs elsewhere
        run.config = dataclasses.replace(run.config, steps=steps)
        run.write_json("config.json", {**run.read_json("config.json"), "steps": steps})
    if run.config.algo != config.algo or run.config.env != config.env:
        spaces = env_spaces(run.config.env)
    started = time.time()
    (train_dqn if run.config.algo == "dqn" else train_ppo)(run, spaces, int(run.read_json("config.json")["seed"]))
    wall = time.time() - started
    best = harness.best_model(run)
    summary = {"env_steps": run.state()["step"], "train_wall_seconds": round(wall, 1),
               **evaluate_model(best, spaces, episodes=100, seed=0)}
    run.write_metrics(summary)
    return {"run": str(run.path), **summary}


def evaluate_model(model: keras.Model, spaces: Spaces, episodes: int, seed: int) -> dict:
    """The greedy policy and a uniformly random one, on the same seeded episodes."""
    returns = run_episodes(spaces.env_id, greedy_policy(model, spaces), episodes, seed)
    random_rng = np.random.default_rng(seed)
    if spaces.discrete:
        def random_policy(observations):
            return random_rng.integers(spaces.action_size, size=len(observations))
    else:
        def random_policy(observations):
            return random_rng.uniform(spaces.action_low, spaces.action_high, (len(observations), spaces.action_size))
    random_returns = run_episodes(spaces.env_id, random_policy, episodes, seed)
    return {"env": spaces.env_id, "algo": algo_of(model), "episodes": episodes, "seed": seed,
            "mean_return": round(float(returns.mean()), 2), "std_return": round(float(returns.std()), 2),
            "min_return": round(float(returns.min()), 2), "max_return": round(float(returns.max()), 2),
            "random_mean_return": round(float(random_returns.mean()), 2),
            "random_std_return": round(float(random_returns.std()), 2)}


def load(weights: str | Path | None, env: str, algo: str | None) -> keras.Model:
    """The user's file, or the shipped weights for `env` (and `algo`, when given)."""
    model = harness.load_model(registry.resolve_weights("rl", weights, env=env, algo=algo), app="rl")
    if algo is not None and algo_of(model) != algo:
        raise BadInput(f"{weights}: a {algo_of(model)} model, not {algo}")
    return model


def evaluate(*, weights: str | None, env: str, algo: str | None, episodes: int, seed: int) -> dict:
    spaces = env_spaces(env)
    model = load(weights, env, algo)
    return evaluate_model(model, spaces, episodes, seed)


def demo(*, weights: str | None, output: Path | None, force: bool, env: str, algo: str | None,
         seed: int) -> list[dict]:
    output = check_gif_path(output or Path(f"{env}.gif"), force)
    spaces = env_spaces(env)
    model = load(weights, env, algo)
    frames, episode_return, steps, fps = record_episode(env, greedy_policy(model, spaces), seed)
    save_gif(frames, output, fps, force)
    return [{"env": env, "algo": algo_of(model), "seed": seed, "return": round(episode_return, 2), "steps": steps,
             "output": str(output),
             "text": f"{env}: return {episode_return:.1f} in {steps} steps ({algo_of(model)}) -> {output}"}]
