"""Gymnasium environments for the RL agents: checked creation, vector envs, episodes, GIFs.

Every environment goes through `make_env` / `make_vector_env`, which turn
gymnasium's many failure modes (unknown id, missing extra, unsupported space)
into one-line `BadInput` errors, and flatten observations so that one MLP fits
any Box, Discrete, MultiDiscrete or MultiBinary observation space (discrete
observations become one-hot vectors). Actions may be Discrete or a Box.
"""

from __future__ import annotations

import dataclasses
import difflib
import warnings
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from PIL import Image, ImageDraw, ImageFont

from zoo.errors import BadInput
from zoo.files import atomic_output, check_output_path

FLAT_OBSERVATIONS = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


@dataclasses.dataclass(frozen=True)
class Spaces:
    """What the networks need to know about an environment."""

    env_id: str
    observation_size: int
    discrete: bool
    action_size: int  # number of actions (discrete) or action dimensions (box)
    action_low: tuple[float, ...] = ()
    action_high: tuple[float, ...] = ()


def _spaces_of(env_id: str, env: gym.Env) -> Spaces:
    observation, action = env.observation_space, env.action_space
    if not isinstance(observation, FLAT_OBSERVATIONS):
        raise BadInput(
            f"{env_id}: observation space {observation} is not supported "
            "(the agents' networks take Box, Discrete, MultiDiscrete or MultiBinary observations)"
        )
    if isinstance(action, spaces.Discrete):
        return Spaces(env_id, int(spaces.flatdim(observation)), True, int(action.n))
    if isinstance(action, spaces.Box) and len(action.shape) == 1:
        return Spaces(
            env_id,
            int(spaces.flatdim(observation)),
            False,
            int(action.shape[0]),
            tuple(float(x) for x in action.low),
            tuple(float(x) for x in action.high),
        )
    raise BadInput(f"{env_id}: action space {action} is not supported (Discrete or a 1-D Box)")


def _make(env_id: str, **kwargs) -> gym.Env:
    """gym.make, with gymnasium's errors (unknown id, missing extra) as one line."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # a deprecated id gets its own one-line error
            return gym.make(env_id, **kwargs)
    except gym.error.DependencyNotInstalled as error:
        raise BadInput(f"{env_id}: needs a package that is not installed ({str(error).splitlines()[0]})") from None
    except gym.error.DeprecatedEnv as error:
        raise BadInput(f"{env_id}: {error}") from None
    except gym.error.Error as error:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise BadInput(f"{env_id}: not a gymnasium environment id ({type(error).__name__}){hint}") from None


def env_spaces(env_id: str) -> Spaces:
    """Check that `env_id` exists and fits the agents, without keeping the env."""
    env = _make(env_id)
    try:
        return _spaces_of(env_id, env)
    finally:
        env.close()


def make_env(env_id: str, render_mode: str | None = None) -> gym.Env:
    """One environment with flat float observations."""
    env = _make(env_id, render_mode=render_mode)
    _spaces_of(env_id, env)
    return gym.wrappers.FlattenObservation(env)


def make_vector_env(env_id: str, count: int, asynchronous: bool = False) -> gym.vector.VectorEnv:
    """`count` copies of the environment stepped together, one process each when `asynchronous`.

    Episodes reset in the same step that ends them (the finished episode's last
    observation is in `info["final_obs"]`), so a rollout can bootstrap from it.
    """
    env_spaces(env_id)
    options = {"autoreset_mode": gym.vector.AutoresetMode.SAME_STEP}
    if asynchronous:
        options["context"] = "spawn"  # forking a process that runs JAX or TensorFlow threads can deadlock
    return gym.make_vec(
        env_id,
        count,
        vectorization_mode="async" if asynchronous else "sync",
        vector_kwargs=options,
        wrappers=[gym.wrappers.FlattenObservation],
    )


def env_action(spaces_: Spaces, action: np.ndarray) -> np.ndarray:
    """What the environment is given: Gaussian samples are clipped to the Box bounds."""
    if spaces_.discrete:
        return action
    return np.clip(action, spaces_.action_low, spaces_.action_high).astype(np.float32)


def run_episodes(env_id: str, policy: Callable[[np.ndarray], np.ndarray], episodes: int, seed: int) -> np.ndarray:
    """Returns of `episodes` episodes, episode i reset with seed `seed + i` (so runs are repeatable)."""
    env = make_env(env_id)
    spaces_ = _spaces_of(env_id, env.unwrapped)
    returns = np.zeros(episodes)
    try:
        for i in range(episodes):
            observation, _ = env.reset(seed=seed + i)
            env.action_space.seed(seed + i)
            done = False
            while not done:
                action = env_action(spaces_, policy(observation[None].astype(np.float32))[0])
                observation, reward, terminated, truncated, _ = env.step(action)
                returns[i] += reward
                done = terminated or truncated
    finally:
        env.close()
    return returns


# ------------------------------------------------------------------ rendering


def _annotate(frame: np.ndarray, text: str) -> np.ndarray:
    """Draw `text` on a white box in the frame's top-left corner."""
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(12, image.height // 20))
    left, top, right, bottom = draw.textbbox((8, 6), text, font=font)
    draw.rectangle((left - 4, top - 3, right + 4, bottom + 3), fill="white")
    draw.text((8, 6), text, fill="black", font=font)
    return np.asarray(image)


def record_episode(
    env_id: str, policy: Callable[[np.ndarray], np.ndarray], seed: int, max_frames: int = 300
) -> tuple[list[np.ndarray], float, int, int]:
    """Play one episode and render it, the running return drawn on each frame.

    Long episodes keep every k-th frame (k from the episode's step limit, so
    memory is bounded before the episode ends) and a GIF stays a few MB.
    Returns (frames, episode return, steps, frames per second of the GIF).
    """
    env = make_env(env_id, render_mode="rgb_array")
    spaces_ = _spaces_of(env_id, env.unwrapped)
    keep_every = -(-(env.spec.max_episode_steps or 1000) // max_frames)
    fps = max(1, round(env.metadata.get("render_fps", 30) / keep_every))
    total, steps = 0.0, 0
    try:
        observation, _ = env.reset(seed=seed)
        frames = [_annotate(env.render(), f"{env_id}  step 0  return 0.0")]
        done = False
        while not done:
            action = env_action(spaces_, policy(observation[None].astype(np.float32))[0])
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            done = terminated or truncated
            if steps % keep_every == 0 or done:
                frames.append(_annotate(env.render(), f"{env_id}  step {steps}  return {total:.1f}"))
    finally:
        env.close()
    return frames, total, steps, fps


def check_gif_path(path: Path, force: bool) -> Path:
    """Fail before the episode is played if the GIF can't or mustn't be written."""
    path = check_output_path(path, force)
    if path.suffix.lower() != ".gif":
        raise BadInput(f"{path}: the demo writes an animated GIF; name the output *.gif")
    return path


def save_gif(frames: list[np.ndarray], path: Path, fps: int, force: bool = False) -> Path:
    """Write frames as a looping animated GIF, atomically."""
    check_gif_path(path, force)
    images = [Image.fromarray(f) for f in frames]
    with atomic_output(path, force) as tmp:
        images[0].save(tmp, save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
    return path
