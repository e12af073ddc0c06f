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

Each algorithm's config, presets and tuned recipes sit beside its loop, in
its module (as in CleanRL); this module is the app: the train and evaluate
entry points the CLI calls, and the predictor (`zoo.load("rl")`) that plays
and records one episode, which `zoo demo rl` calls.

Environments: gymnasium's classic control and Box2D (offline wheels).
Headline metric: mean (and standard deviation) of the undiscounted return over
100 seeded evaluation episodes with the greedy policy, beside a random policy's.
Targets: 475 on CartPole-v1 within 50,000 environment steps (DQN and PPO), 200
on LunarLander-v3 (Stable-Baselines3's PPO is the baseline); the measured
numbers are on the model card (`zoo/weights/rl.json`).

Hyper-parameters follow RL Baselines3 Zoo's tuned recipes (`dqn.RECIPES`, `ppo.RECIPES`).

    zoo train rl --algo ppo --env CartPole-v1 --steps 50000 --seed 0
    zoo train rl --algo ppo --env LunarLander-v3 --preset full --envs 16 --async-envs
    zoo evaluate rl --env LunarLander-v3 --episodes 100
    zoo demo rl --env CartPole-v1 -o episode.gif
    zoo.load("rl", env="CartPole-v1")(seed=0).save("episode.gif")    # in Python
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import keras
import numpy as np

from zoo import api, harness, registry
from zoo.errors import BadInput
from zoo.rl import dqn, ppo
from zoo.rl.envs import Spaces, check_gif_path, env_spaces, record_episode, run_episodes, save_gif
from zoo.rl.networks import ALGOS, algo_of, build_model, greedy_policy
from zoo.rl.training import AgentConfig

ALGORITHMS = {"dqn": dqn, "ppo": ppo}  # each module: its config, PRESETS, RECIPES (per env) and `train` loop


# ---------------------------------------------------------- CLI entry points


def make_config(
    preset: str, algo: str, env: str, steps: int | None = None, envs: int | None = None, async_envs: bool = False
) -> AgentConfig:
    """The algorithm's preset, then its tuned recipe for `env`, then the command line's overrides."""
    if algo not in ALGOS:
        raise BadInput(f"--algo {algo}: unknown algorithm (choose {' or '.join(ALGOS)})")
    module = ALGORITHMS[algo]
    config = dataclasses.replace(module.PRESETS[preset], env=env, **module.RECIPES.get(env, {}), async_envs=async_envs)
    overrides = {name: value for name, value in (("steps", steps), ("envs", envs)) if value is not None}
    return dataclasses.replace(config, **overrides)


def _resumed_algo(out: Path | None, algo: str) -> str:
    """A resumed run goes on with its own algorithm, whatever --algo says: its config.json names it."""
    saved = Path(out) / "config.json" if out else None
    return json.loads(saved.read_text()).get("algo", algo) if saved and saved.exists() else algo


def train(
    *,
    preset: str,
    out: Path | None,
    resume: bool,
    seed: int,
    algo: str,
    env: str,
    steps: int | None,
    envs: int | None,
    async_envs: bool,
) -> dict:
    config = make_config(preset, _resumed_algo(out, algo) if resume else algo, env, steps, envs, async_envs)
    spaces = env_spaces(config.env)
    build_model(config.algo, spaces, config.hidden)  # fails early (DQN on a Box action space), before a run exists
    run = harness.start_run(f"rl-{config.algo}-{config.env}", config, out, resume, seed)
    if resume and steps is not None:  # --steps may extend a resumed run, like --epochs elsewhere
        run.config = dataclasses.replace(run.config, steps=steps)
        run.write_json("config.json", {**run.read_json("config.json"), "steps": steps})
    if run.config.env != config.env:
        spaces = env_spaces(run.config.env)
    started = time.time()
    ALGORITHMS[run.config.algo].train(run, spaces, int(run.read_json("config.json")["seed"]))
    wall = time.time() - started
    best = harness.best_model(run)
    summary = {
        "env_steps": run.state()["step"],
        "train_wall_seconds": round(wall, 1),
        **evaluate_model(best, spaces, episodes=100, seed=0),
    }
    run.write_metrics(summary)
    return {"run": str(run.path), **summary}


def random_policy(spaces: Spaces, seed: int):
    """A uniformly random policy over the action space: the baseline every agent must beat."""
    rng = np.random.default_rng(seed)
    if spaces.discrete:
        return lambda observations: rng.integers(spaces.action_size, size=len(observations))
    return lambda observations: rng.uniform(
        spaces.action_low, spaces.action_high, (len(observations), spaces.action_size)
    )


def evaluate_model(model: keras.Model, spaces: Spaces, episodes: int, seed: int) -> dict:
    """The greedy policy and a uniformly random one, on the same seeded episodes."""
    returns = run_episodes(spaces.env_id, greedy_policy(model, spaces), episodes, seed)
    random_returns = run_episodes(spaces.env_id, random_policy(spaces, seed), episodes, seed)
    return {
        "env": spaces.env_id,
        "algo": algo_of(model),
        "episodes": episodes,
        "seed": seed,
        "mean_return": round(float(returns.mean()), 2),
        "std_return": round(float(returns.std()), 2),
        "min_return": round(float(returns.min()), 2),
        "max_return": round(float(returns.max()), 2),
        "random_mean_return": round(float(random_returns.mean()), 2),
        "random_std_return": round(float(random_returns.std()), 2),
    }


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


# ------------------------------------------------------------- the predictor


@dataclasses.dataclass
class Episode(api.Result):
    """One greedy episode: its undiscounted return, its length, and its animation: (frames per second, frames),
    the running return drawn on each frame."""

    env: str
    algo: str
    seed: int
    episode_return: float
    steps: int
    animation: tuple[int, list[np.ndarray]] = api.shown("animation", rich=True)

    @property
    def frames(self) -> list[np.ndarray]:
        return self.animation[1]

    @property
    def text(self) -> str:
        where = f" -> {self.output}" if self.output else ""
        return f"{self.env}: return {self.episode_return:.1f} in {self.steps} steps ({self.algo}){where}"

    def save(self, path: str | Path, force: bool = False) -> Path:
        fps, frames = self.animation
        self.output = str(save_gif(frames, Path(path), fps, force))
        return Path(path)


EXPORT_EPISODES = 10  # seeded episodes that re-measure an exported policy


class Predictor(api.Predictor):
    """`zoo.load("rl", env="CartPole-v1", algo=None)`: the shipped (or given) agent for an environment; a call
    plays one greedy episode, seeded, and returns it. The environment is the agent's: a call may name it
    (`agent("CartPole-v1")`), but only the one it was loaded for."""

    def __init__(self, spec, options):
        super().__init__(spec, options)
        self.spaces = env_spaces(self.options["env"])
        self.model = load(self.weights, self.options["env"], self.options["algo"])
        self.policy = greedy_policy(self.model, self.spaces)  # refuses a model trained on another environment
        self.options["algo"] = algo_of(self.model)

    def predict(self, environment: str | None, *, seed: int, **loaded) -> Episode:
        if environment is not None and environment != self.spaces.env_id:
            raise BadInput(
                f"{environment}: this agent plays {self.spaces.env_id}; load another: "
                f"zoo.load('rl', env={environment!r})"
            )
        frames, episode_return, steps, fps = record_episode(self.spaces.env_id, self.policy, seed)
        return Episode(self.spaces.env_id, algo_of(self.model), seed, round(episode_return, 2), steps, (fps, frames))

    def output_name(self, source: Path | None) -> str:
        return f"{self.spaces.env_id.replace('/', '_')}.gif"

    def exportables(self) -> list:
        """The greedy policy: observations (N, obs) -> actions, the argmax of Q or of the logits (discrete),
        or the Gaussian's mean (continuous); stepping the environment stays with the caller."""
        from zoo.export import Exportable

        spaces, algo = self.spaces, algo_of(self.model)
        observations = keras.Input((spaces.observation_size,), name="observations")
        head = self.model.get_layer("q_values" if algo == "dqn" else "policy")(observations)
        # top_k rather than argmax: Keras's argmax guards against -0.0 with a bitcast that ONNX lacks
        actions = keras.ops.top_k(head, k=1)[1][:, 0] if spaces.discrete else head[:, : spaces.action_size]
        graph = keras.Model(observations, actions, name=f"rl_{algo}_policy")

        def mean_return(run) -> dict:
            returns = run_episodes(spaces.env_id, lambda batch: run([batch]), EXPORT_EPISODES, seed=0)
            return {"mean_return": round(float(returns.mean()), 2), "episodes": EXPORT_EPISODES}

        return [Exportable("policy", graph, mean_return, None, {"env": spaces.env_id, "algo": algo})]

    def target(self, source: Path | None, output: Path | None, many: bool, force: bool) -> Path:
        return check_gif_path(output or Path(self.output_name(source)), force)
