"""Deep RL agents for any gymnasium environment: DQN and PPO, one file each.

DQN (`zoo/rl/dqn.py`: Mnih et al., Nature 2015, with double DQN, van Hasselt
et al., AAAI 2016) learns action values from a replay buffer against a target
network. Discrete actions only.

PPO (`zoo/rl/ppo.py`: Schulman et al., 2017, with GAE, Schulman et al., ICLR
2016) learns a policy and a value function from on-policy rollouts of many
environments stepped together (`gymnasium.vector`). Discrete actions get a
categorical policy, Box actions a diagonal Gaussian.

Both losses are Keras loss functions in `keras.ops`, trained with
`train_on_batch`, so the same code trains under TensorFlow and JAX and the
`.keras` files load under either. Acting, the step that runs once per
environment step, does not go through Keras at all: the small MLPs' weights
are copied into NumPy (`zoo/rl/networks.py`), which is far faster than
`model(state)` per step (`bench/rl_acting.py` measures it). The replay buffer
and rollouts live in `zoo/rl/buffers.py`, what both training loops share
(validation rounds, checkpoints, resume) in `zoo/rl/training.py`.

This module is the app: its config, presets and tuned recipes, and the
train / evaluate / demo entry points the CLI calls.

Environments: gymnasium's classic control and Box2D (offline wheels).
Headline metric: mean (and standard deviation) of the undiscounted return over
100 seeded evaluation episodes with the greedy policy, beside a random policy's.
Targets: 475 on CartPole-v1 within 50,000 environment steps (DQN and PPO), 200
on LunarLander-v3 (Stable-Baselines3's PPO is the baseline); the measured
numbers are on the model card (`zoo/weights/rl.json`).

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

from zoo import harness, registry
from zoo.errors import BadInput
from zoo.rl.dqn import train_dqn
from zoo.rl.envs import Spaces, check_gif_path, env_spaces, record_episode, run_episodes, save_gif
from zoo.rl.networks import ALGOS, algo_of, build_model, greedy_policy
from zoo.rl.ppo import train_ppo


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
