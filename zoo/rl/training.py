"""What DQN's and PPO's training loops share: their configs' common fields, validation rounds,
checkpoints, resume, the start of a run.

Each algorithm's own config (`dqn.DQNConfig`, `ppo.PPOConfig`) extends `AgentConfig` beside its
loop, as CleanRL keeps each algorithm's arguments in its file. Neither loop is `model.fit`, so
they keep the harness's run directory by hand: `Checkpoints` logs a row, saves best/last
checkpoints and the loop's own state (`resume.npz`) every `eval_every` environment steps, and
`start_model` / `start_envs` pick a run up from that state on --resume.
"""

from __future__ import annotations

import dataclasses
import time

import keras
import numpy as np
from keras import ops

from zoo import harness
from zoo.files import atomic_output
from zoo.rl.envs import Spaces, make_vector_env, run_episodes
from zoo.rl.networks import build_model, greedy_policy

VALIDATION_SEED = 1_000_000  # checkpoint selection plays other episodes than `zoo evaluate` (seeds 0..)


@dataclasses.dataclass
class AgentConfig:
    """What every algorithm's config holds: the environment, the budget, the networks, validation rounds.

    `algo` is saved with the run (config.json), so that --resume rebuilds the right config.
    """

    algo: str
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
        self.running_returns: np.ndarray | None = None  # of each environment's episode in progress
        self.started, self.steps_at_start = time.time(), self.step
        if run.resumed:
            run.truncate_log(self.round + 1)

    def due(self) -> bool:
        return self.step // self.config.eval_every > self.round or self.step >= self.total_steps

    def record_rewards(self, rewards: np.ndarray, done: np.ndarray) -> None:
        """Add one vector step's rewards; episodes that ended in it join the log's training return."""
        if self.running_returns is None:
            self.running_returns = np.zeros(len(rewards))
        self.running_returns += rewards
        self.episode_returns.extend(float(r) for r in self.running_returns[done])
        self.running_returns[done] = 0

    def save(self, model: keras.Model, arrays: dict[str, np.ndarray], **stats) -> None:
        self.round = max(self.round + 1, self.step // self.config.eval_every)
        returns = run_episodes(
            self.spaces.env_id,
            greedy_policy(model, self.spaces),
            self.config.eval_episodes,
            VALIDATION_SEED + 1000 * self.round,
        )
        elapsed = time.time() - self.started
        row = {
            "epoch": self.round,
            "step": self.step,
            "val_return": returns.mean(),
            **({"return": np.mean(self.episode_returns[-100:])} if self.episode_returns else {}),
            **stats,
            "steps_per_second": (self.step - self.steps_at_start) / max(elapsed, 1e-9),
            "time": elapsed,
        }
        self.run.log(row)
        if self.best is None or returns.mean() > self.best:
            self.best = float(returns.mean())
            self.run.save_checkpoint(model, "best")
        self.run.save_checkpoint(model, "last")
        with atomic_output(self.run.file("resume.npz"), force=True) as tmp:
            np.savez(tmp, **arrays)
        self.run.save_state(step=self.step, round=self.round, best=self.best, finished=self.step >= self.total_steps)
        print(
            f"step {self.step}: validation return {returns.mean():.1f} +- {returns.std():.1f}"
            + (f", training episodes {row['return']:.1f}" if "return" in row else ""),
            flush=True,
        )

    def resume_arrays(self) -> dict[str, np.ndarray]:
        if not self.run.resumed or not self.run.file("resume.npz").exists():
            return {}
        with np.load(self.run.file("resume.npz")) as saved:
            return dict(saved)


def optimizer_arrays(model: keras.Model) -> dict[str, np.ndarray]:
    """The optimizer's state, for resume.npz: `start_model` compiles a fresh optimizer over the checkpoint."""
    return {f"optimizer_{i}": ops.convert_to_numpy(v) for i, v in enumerate(model.optimizer.variables)}


def _restore_optimizer(model: keras.Model, arrays: dict[str, np.ndarray]) -> None:
    model.optimizer.build(model.trainable_variables)
    for i, variable in enumerate(model.optimizer.variables):
        variable.assign(arrays[f"optimizer_{i}"])


def start_model(log: Checkpoints, spaces: Spaces, loss, learning_rate) -> tuple[keras.Model, dict[str, np.ndarray]]:
    """A new model, or the last checkpoint with its optimizer's state when resuming; also the loop's saved arrays."""
    run, config = log.run, log.config
    model = (
        harness.load_model(run.file("last.keras"))
        if run.resumed and run.file("last.keras").exists()
        else build_model(config.algo, spaces, config.hidden)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, epsilon=1e-5, global_clipnorm=config.max_grad_norm), loss=loss
    )
    saved = log.resume_arrays()
    if saved:
        _restore_optimizer(model, saved)
    return model, saved


def start_envs(log: Checkpoints, seed: int):
    """(rng, vector env, first observations), seeded by the step too, so a resumed run draws afresh, repeatably."""
    rng = np.random.default_rng([seed, log.step])
    env = make_vector_env(log.spaces.env_id, log.config.envs, log.config.async_envs)
    observations = env.reset(seed=seed + log.step)[0].astype(np.float32)
    return rng, env, observations
