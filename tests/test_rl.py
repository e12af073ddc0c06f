"""RL agents: bad input through the CLI, the fast acting path, tiny training runs, resume, demo, JAX."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from PIL import Image

from conftest import assert_one_line_error

REPO = Path(__file__).resolve().parents[1]


class DictObservationEnv(gym.Env):
    """A tiny environment whose observations are a Dict, which the agents' MLPs can't take."""

    observation_space = spaces.Dict({"position": spaces.Box(-1.0, 1.0, (2,))})
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action):
        return self.observation_space.sample(), 0.0, True, False, {}


class TargetEnv(gym.Env):
    """One-step episodes rewarded -(action - 0.5)^2: a continuous action to learn in a few thousand steps.

    An untrained Gaussian policy's mean is about 0 (PPO's output layer starts near zero): return -0.25.
    """

    observation_space = spaces.Box(-1.0, 1.0, (1,))
    action_space = spaces.Box(-1.0, 1.0, (1,))

    def __init__(self, render_mode=None):
        self.render_mode = render_mode

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.zeros(1, np.float32), -float((action[0] - 0.5) ** 2), True, False, {}


gym.register("zoo-test/DictObservation-v0", entry_point=DictObservationEnv)
gym.register("zoo-test/Target-v0", entry_point=TargetEnv)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("action", ["train", "evaluate", "demo"])
def test_unknown_environment_is_one_line(zoo, action, tmp_path):
    result = zoo(action, "rl", "--env", "CartPol-v1", *(["--out", tmp_path / "run"] if action == "train" else []))
    assert_one_line_error(result, "CartPol-v1", "not a gymnasium environment id", "did you mean 'CartPole-v1'")
    assert not (tmp_path / "run").exists()


def test_deprecated_environment_names_its_successor(zoo):
    assert_one_line_error(zoo("evaluate", "rl", "--env", "Taxi-v3"), "Taxi-v3", "deprecated", "Taxi-v4")


def test_dqn_on_continuous_actions_is_refused(zoo, tmp_path):
    result = zoo("train", "rl", "--algo", "dqn", "--env", "Pendulum-v1", "--out", tmp_path / "run")
    assert_one_line_error(result, "Pendulum-v1", "DQN needs a discrete action space")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("action", ["train", "evaluate"])
def test_dict_observation_space_is_refused(zoo, action, tmp_path):
    result = zoo(
        action,
        "rl",
        "--env",
        "zoo-test/DictObservation-v0",
        *(["--out", tmp_path / "run"] if action == "train" else []),
    )
    assert_one_line_error(result, "zoo-test/DictObservation-v0", "observation space Dict", "not supported")


@pytest.mark.parametrize("episodes", ["0", "-3"])
def test_zero_episodes_is_refused(zoo, episodes):
    assert_one_line_error(zoo("evaluate", "rl", "--episodes", episodes), f"--episodes {episodes}", "at least 1")


def test_demo_output_must_be_a_new_gif(zoo, tmp_path, tiny_ppo_run):
    assert_one_line_error(zoo("demo", "rl", "--weights", tiny_ppo_run, "-o", tmp_path / "episode.mp4"), "*.gif")
    existing = tmp_path / "old.gif"
    existing.write_bytes(b"keep me")
    assert_one_line_error(zoo("demo", "rl", "--weights", tiny_ppo_run, "-o", existing), "already exists")
    assert existing.read_bytes() == b"keep me"


def test_weights_from_another_environment_are_refused(zoo, tiny_ppo_run):
    result = zoo("evaluate", "rl", "--env", "LunarLander-v3", "--weights", tiny_ppo_run, "--episodes", "1")
    assert_one_line_error(result, "LunarLander-v3", "trained on another environment")


# ------------------------------------------------------------- the agents


def test_numpy_acting_path_matches_the_keras_model():
    """The NumPy copy used for acting computes exactly what the Keras model computes."""
    from zoo.rl import agents, networks
    from zoo.rl.envs import env_spaces

    for algo, tower in (("ppo", "policy"), ("dqn", "q_values")):
        config = agents.make_config("quick", algo, "Pendulum-v1" if algo == "ppo" else "Acrobot-v1")
        spaces_ = env_spaces(config.env)
        model = networks.build_model(config.algo, spaces_, config.hidden)
        observations = np.random.default_rng(0).normal(size=(5, spaces_.observation_size)).astype(np.float32)
        expected = np.asarray(model.get_layer(tower)(observations))
        np.testing.assert_allclose(networks.NumpyMLP(model.get_layer(tower))(observations), expected, atol=1e-5)


def test_gae_with_lambda_one_is_the_discounted_return_minus_the_value():
    from zoo.rl.buffers import gae

    rewards = np.array([[1.0], [2.0], [3.0]])
    values = np.array([[0.5], [0.25], [0.0]])
    done = np.array([[0.0], [1.0], [0.0]])  # the episode ends after step 1; step 2 starts a new one
    advantages = gae(rewards, values, done, last_values=np.array([10.0]), gamma=0.5, lam=1.0)
    expected_returns = np.array([[1 + 0.5 * 2], [2.0], [3 + 0.5 * 10]])
    np.testing.assert_allclose(advantages, expected_returns - values)


def test_double_dqn_target_uses_the_online_argmax_and_the_target_value():
    from zoo.rl.dqn import double_dqn_loss

    q_values = np.array(
        [
            [1.0, 0.0],  # Q(s) of the one transition; action 0 was taken
            [0.0, 5.0],
        ],  # online Q(s'): argmax is action 1
        np.float32,
    )
    # [action, reward, not terminal, target Q(s', 0), target Q(s', 1)]; the second row is ignored.
    y_true = np.array([[0, 0.2, 1, 100.0, 1.0], [0, 0, 0, 0, 0]], np.float32)
    loss = np.asarray(double_dqn_loss(2, gamma=0.5)(y_true, q_values))
    target = 0.2 + 0.5 * 1.0  # the target network's value of the online network's choice, not max(100, 1)
    np.testing.assert_allclose(loss, [0.5 * (target - 1.0) ** 2])  # |error| < 1: the quadratic part of Huber
    y_true[0, 2] = 0  # terminal: no bootstrap
    np.testing.assert_allclose(np.asarray(double_dqn_loss(2, gamma=0.5)(y_true, q_values)), [0.5 * 0.8**2])


def test_gaussian_log_prob_matches_the_formula():
    from zoo.rl.envs import Spaces
    from zoo.rl.ppo import log_prob_and_entropy

    spaces_ = Spaces("test", 3, False, 2, (-1.0, -1.0), (1.0, 1.0))
    params = np.array([[0.0, 1.0, 0.0, np.log(2.0)]], np.float32)  # means (0, 1), stds (1, 2)
    actions = np.array([[1.0, 1.0]], np.float32)
    log_prob, entropy = log_prob_and_entropy(spaces_, params, actions)
    expected = -0.5 * 1.0 - 0.5 * np.log(2 * np.pi) + (-np.log(2.0) - 0.5 * np.log(2 * np.pi))
    np.testing.assert_allclose(np.asarray(log_prob), [expected], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(entropy), [np.log(2.0) + np.log(2 * np.pi * np.e)], rtol=1e-5)


@pytest.fixture(scope="module")
def tiny_ppo_run(tmp_path_factory):
    """A PPO run on CartPole short enough for a test (two updates); its directory is usable as --weights."""
    from zoo import registry

    out = tmp_path_factory.mktemp("rl") / "ppo"
    registry.call("rl", "train", algo="ppo", env="CartPole-v1", steps=512, out=out)
    return out


def test_training_writes_the_harness_run_directory(tiny_ppo_run):
    for name in ("config.json", "log.csv", "curves.png", "best.keras", "last.keras", "metrics.json", "resume.npz"):
        assert (tiny_ppo_run / name).exists(), name
    metrics = json.loads((tiny_ppo_run / "metrics.json").read_text())
    assert metrics["env_steps"] == 512 and metrics["episodes"] == 100
    assert json.loads((tiny_ppo_run / "state.json").read_text())["finished"] is True


def test_resume_continues_with_a_raised_step_budget(zoo, tiny_ppo_run, tmp_path):
    import shutil

    run = tmp_path / "resumed"
    shutil.copytree(tiny_ppo_run, run)
    result = zoo("train", "rl", "--out", run, "--resume", "--steps", "1024")
    assert result.code == 0, result.err
    assert json.loads((run / "metrics.json").read_text())["env_steps"] == 1024
    assert json.loads((run / "config.json").read_text())["steps"] == 1024
    rows = (run / "log.csv").read_text().splitlines()
    assert len(rows) == 3  # header, the first run's round, the resumed round


def test_evaluate_is_seeded_and_reports_the_random_baseline(zoo, tiny_ppo_run):
    first = zoo("evaluate", "rl", "--weights", tiny_ppo_run, "--episodes", "5", "--seed", "7", "--json")
    second = zoo("evaluate", "rl", "--weights", tiny_ppo_run, "--episodes", "5", "--seed", "7", "--json")
    assert first.code == 0, first.err
    assert first.out == second.out
    result = json.loads(first.out)
    assert result["episodes"] == 5 and result["algo"] == "ppo"
    assert {"mean_return", "std_return", "random_mean_return", "random_std_return"} <= set(result)


def test_demo_writes_an_annotated_gif(zoo, tiny_ppo_run, tmp_path):
    target = tmp_path / "episode.gif"
    result = zoo("demo", "rl", "--weights", tiny_ppo_run, "-o", target, "--json")
    assert result.code == 0, result.err
    (episode,) = json.loads(result.out)
    with Image.open(target) as gif:
        # The first frame, every 2nd step (CartPole's 500-step limit over 300 frames at most) and the last.
        steps = episode["steps"]
        assert gif.format == "GIF" and gif.n_frames == 1 + steps // 2 + steps % 2
        first = np.asarray(gif.convert("RGB"))
        gif.seek(gif.n_frames - 1)
        last = np.asarray(gif.convert("RGB"))
    label = (slice(0, 30), slice(0, 400))  # the step and running return, drawn in the top-left corner
    assert (first[label] != last[label]).any()


def test_each_algorithm_has_its_own_config():
    from zoo.rl import agents, dqn, ppo

    dqn_config, ppo_config = (agents.make_config("quick", algo, "CartPole-v1") for algo in ("dqn", "ppo"))
    assert isinstance(dqn_config, dqn.DQNConfig) and not hasattr(dqn_config, "clip_range")
    assert isinstance(ppo_config, ppo.PPOConfig) and not hasattr(ppo_config, "buffer_size")
    assert dqn_config.train_every == dqn.RECIPES["CartPole-v1"]["train_every"]  # the tuned recipe over the preset
    assert agents.make_config("full", "ppo", "Acrobot-v1", steps=7).steps == 7


def test_the_python_face_plays_the_loaded_environment(tiny_ppo_run, tmp_path):
    from zoo import api
    from zoo.errors import BadInput

    agent = api.load("rl", weights=tiny_ppo_run)
    episode = agent("CartPole-v1", seed=3)  # the natural input: an environment, the one the agent was loaded for
    assert (episode.env, episode.algo, episode.seed) == ("CartPole-v1", "ppo", 3)
    assert len(episode.frames) == 1 + episode.steps // 2 + episode.steps % 2 and episode.frames[0].ndim == 3
    assert agent(seed=3).to_dict() == episode.to_dict()  # seeded: the same episode
    with pytest.raises(BadInput, match=r"Acrobot-v1: this agent plays CartPole-v1; load another"):
        agent("Acrobot-v1")
    with pytest.raises(BadInput, match=r"\*\.gif"):
        episode.save(tmp_path / "episode.mp4")
    episode.save(tmp_path / "episode.gif")
    assert episode.to_dict()["output"] == str(tmp_path / "episode.gif")
    with Image.open(tmp_path / "episode.gif") as gif:
        assert gif.n_frames == len(episode.frames)


def test_dqn_trains_and_resumes_on_a_tiny_budget(zoo, tmp_path):
    """Every part of the DQN loop (replay, double-DQN targets, target copies, resume state) on a few hundred
    steps; `zoo train rl --resume` rebuilds the DQN config from the run's config.json (--algo defaults to ppo)."""
    import dataclasses

    from zoo import harness
    from zoo.rl import agents, dqn, networks
    from zoo.rl.envs import env_spaces

    config = dataclasses.replace(
        agents.make_config("quick", "dqn", "CartPole-v1", steps=400),
        hidden=(16,),
        learning_starts=100,
        train_every=50,
        gradient_steps=2,
        target_every=100,
        buffer_size=300,
        eval_every=200,
        eval_episodes=2,
    )
    spaces_ = env_spaces("CartPole-v1")
    run = harness.start_run("rl-test", config, tmp_path / "dqn", seed=1)
    model = dqn.train(run, spaces_, seed=1)
    state = run.state()
    assert state["step"] == 400 and state["round"] == 2 and state["finished"]
    with np.load(run.file("resume.npz")) as saved:
        assert int(saved["stored"]) == 400 and saved["observations"].shape == (300, 4)
    assert np.isfinite([r["loss"] for r in run.log_rows()]).all()
    assert networks.algo_of(model) == "dqn"
    result = zoo("train", "rl", "--out", tmp_path / "dqn", "--resume", "--steps", "600")
    assert result.code == 0, result.err
    saved_config = json.loads((tmp_path / "dqn" / "config.json").read_text())
    assert saved_config["algo"] == "dqn" and saved_config["steps"] == 600 and saved_config["hidden"] == [16]
    assert saved_config["train_every"] == 50  # the run's own config, not the recipe's
    assert run.state()["step"] == 600 and len(run.log_rows()) == 3
    assert json.loads((tmp_path / "dqn" / "metrics.json").read_text())["algo"] == "dqn"


def test_ppo_learns_a_gaussian_policy_on_a_box_action_space(tmp_path):
    """On one-step episodes rewarded -(action - 0.5)^2 the untrained policy's mean (about 0) returns -0.25 and a
    uniformly random one about -0.6; the trained policy must bring its mean near 0.5."""
    import dataclasses

    from zoo import harness
    from zoo.rl import agents, ppo
    from zoo.rl.envs import env_spaces

    config = dataclasses.replace(
        agents.make_config("quick", "ppo", "zoo-test/Target-v0", steps=2048, envs=4),
        learning_rate=3e-3,
        eval_every=2048,
    )
    spaces_ = env_spaces(config.env)
    model = ppo.train(harness.start_run("rl-test", config, tmp_path / "run", seed=0), spaces_, seed=0)
    metrics = agents.evaluate_model(model, spaces_, episodes=20, seed=0)
    assert metrics["algo"] == "ppo" and metrics["random_mean_return"] < -0.4
    assert metrics["mean_return"] > -0.1, metrics


@pytest.mark.jax
def test_ppo_trains_under_jax_without_tensorflow(tmp_path):
    """The lent GPU machine has JAX and no TensorFlow: training and the .keras file must not need it."""
    script = (
        "import sys; sys.modules['tensorflow'] = None\n"  # makes `import tensorflow` fail as if not installed
        "import cli; code = cli.main(['train', 'rl', '--env', 'CartPole-v1', '--steps', '256', '--envs', '2',"
        f" '--async-envs', '--out', {str(tmp_path / 'run')!r}])\n"
        "sys.exit(code)\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "run" / "best.keras").exists()
    # ... and the JAX-trained file loads and acts under TensorFlow.
    from zoo import harness
    from zoo.rl import networks
    from zoo.rl.envs import env_spaces

    model = harness.load_model(tmp_path / "run" / "best.keras")
    assert networks.greedy_policy(model, env_spaces("CartPole-v1"))(np.zeros((3, 4), np.float32)).shape == (3,)


# ------------------------------------------------------- shipped weights


def _shipped(tag: str) -> dict:
    card = json.loads((REPO / "zoo" / "weights" / "rl.json").read_text())
    entries = [w for w in card["weights"] if w["tag"] == tag]
    if not entries:
        pytest.skip(f"no shipped weights tagged {tag}")
    return entries[0]


@pytest.mark.parametrize("tag", ["cartpole-dqn", "cartpole-ppo"])
def test_shipped_cartpole_agents_reach_the_target(zoo, tag):
    entry = _shipped(tag)
    env, algo = entry["extra"]["env"], entry["extra"]["algo"]
    result = zoo("evaluate", "rl", "--env", env, "--algo", algo, "--episodes", "100", "--json")
    assert result.code == 0, result.err
    metrics = json.loads(result.out)
    assert metrics["mean_return"] >= 475
    assert metrics["mean_return"] == entry["metrics"]["mean_return"]  # the card's number is reproducible


def test_shipped_lunarlander_agent_beats_random(zoo):
    _shipped("lunarlander-ppo")  # skips when it is not shipped
    result = zoo("evaluate", "rl", "--env", "LunarLander-v3", "--episodes", "10", "--json")
    assert result.code == 0, result.err
    metrics = json.loads(result.out)
    assert metrics["mean_return"] > metrics["random_mean_return"] + 100


# ------------------------------------------------------- to quality (slow)


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_cartpole_reaches_475_within_50k_steps(zoo, algo, tmp_path):
    result = zoo("train", "rl", "--algo", algo, "--env", "CartPole-v1", "--steps", "50000", "--out", tmp_path / algo)
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / algo / "metrics.json").read_text())
    assert metrics["env_steps"] <= 50_000
    assert metrics["mean_return"] >= 475
