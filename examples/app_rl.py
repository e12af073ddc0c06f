# %% [markdown]
# # Reinforcement learning: the `rl` app
#
# **Title:** Reinforcement learning: the `rl` app<br>
# **Author:** keras-zoo contributors<br>
# **Date created:** 2026/12/06<br>
# **Last modified:** 2026/12/06<br>
# **Description:** Watch the shipped PPO agent balance a pole, read the PPO loss and GAE in `zoo/rl/`,
# train an agent for under a minute and measure it beside a random policy.
#
# The `rl` app trains DQN and PPO agents for any gymnasium environment. Its losses are Keras
# loss functions written in `keras.ops`; acting, which runs once per environment step, copies
# the small networks into NumPy. This notebook plays an episode with the shipped CartPole agent
# through `zoo.load`, reads the key parts of the modules (quoted from the running source),
# trains a PPO agent with the app's own loop, and ends with the card's recipes and numbers.

# %% tags=["parameters"]
# Parameters. The defaults train for under a minute on a 2-core CPU.
ENV = "CartPole-v1"  # or "LunarLander-v3" (then TRAINING_STEPS = 1_000_000: the full preset, ~8 minutes)
TRAINING_STEPS = 30_000  # environment steps of the PPO run (the card's CartPole recipe: 50,000)
EPISODES = 20  # seeded evaluation episodes (the card's numbers: 100)

# %%
import inspect
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import matplotlib.pyplot as plt
import numpy as np

import zoo
from cli import main as zoo_cli  # the `zoo` command, run in this process
from zoo.rl import agents, buffers, dqn, networks, ppo  # the app's modules, which this notebook reads

start = time.perf_counter()
spec = zoo.apps("rl")[0]
print(spec.summary)

# %% [markdown]
# ## The shipped agent plays one episode
#
# CartPole: push a cart left or right to keep a pole upright; +1 for every step it stays up,
# 500 at most. `zoo.load("rl", env=...)` loads the shipped agent for the environment; a call
# plays one seeded episode with the greedy policy and returns its frames (the app's result
# `save`s them as a GIF, as `zoo demo rl` does).

# %%
agent = zoo.load("rl", env=ENV)
episode = agent(seed=0)
print(episode.text)
picked = np.linspace(0, len(episode.frames) - 1, 6).astype(int)
fig, axes = plt.subplots(1, 6, figsize=(16, 2.6))
for ax, index in zip(axes, picked):
    ax.imshow(episode.frames[index])
    ax.set_title(f"frame {index}")
    ax.axis("off")
plt.show()
gif = episode.save(Path(tempfile.mkdtemp()) / "episode.gif")
print(f"{len(episode.frames)} frames written to {gif.name} ({gif.stat().st_size / 1e3:.0f} kB)")
assert episode.episode_return > 400 if ENV == "CartPole-v1" else episode.episode_return > 100

# %%
shipped = agents.evaluate_model(agent.model, agent.spaces, episodes=EPISODES, seed=0)
print({k: shipped[k] for k in ("mean_return", "std_return", "random_mean_return")})
assert shipped["mean_return"] > shipped["random_mean_return"] + 3 * shipped["random_std_return"]

# %% [markdown]
# ## How it works: reading `zoo/rl/`
#
# **PPO's loss** (Schulman et al., 2017) raises the probability of actions that did better
# than expected (positive advantage), but clips the probability ratio to $[1 - \epsilon,
# 1 + \epsilon]$ so that one update cannot move the policy far from the one that collected the
# data; the same network also predicts the value, and an entropy bonus keeps it exploring. It
# is a Keras loss in `keras.ops`, so it trains under TensorFlow or JAX:

# %%
print(inspect.getsource(ppo.ppo_loss))

# %% [markdown]
# **Advantages** come from generalised advantage estimation (GAE, Schulman et al., 2016): an
# exponentially weighted sum of temporal-difference errors, which trades bias for variance
# with $\lambda$. Truncated episodes (time limits, not failures) get the value of the state
# they stopped in, so the agent is not taught that stopping at 500 steps is a failure.

# %%
print(inspect.getsource(ppo.ppo_targets))
print(inspect.getsource(buffers.gae))

# %% [markdown]
# **DQN** (the other algorithm) regresses $Q(s, a)$ on $r + \gamma Q_{\text{target}}(s',
# \arg\max_a Q(s', a))$, the double-DQN target, with a Huber loss:

# %%
print(inspect.getsource(dqn.double_dqn_loss))

# %% [markdown]
# **Acting in NumPy.** A step of CartPole takes microseconds; a Keras call on one state takes
# far longer. So the policy that acts is a NumPy copy of the network's weights:

# %%
print(inspect.getsource(networks.NumpyMLP))
observations = np.random.default_rng(0).normal(size=(5, agent.spaces.observation_size)).astype(np.float32)
keras_logits = np.asarray(agent.model.get_layer("policy")(observations))
assert np.allclose(networks.NumpyMLP(agent.model.get_layer("policy"))(observations), keras_logits, atol=1e-5)

# %% [markdown]
# ## Train an agent
#
# The app's own entry point, `agents.train` (what `zoo train rl` calls): the card's tuned
# CartPole recipe (RL Baselines3 Zoo's), on fewer environment steps, into a temporary run
# directory; it ends with 100 seeded episodes of the best checkpoint beside a random policy.

# %%
t0 = time.perf_counter()
summary = agents.train(
    preset="quick",
    out=Path(tempfile.mkdtemp()) / "run",
    resume=False,
    seed=0,
    algo="ppo",
    env=ENV,
    steps=TRAINING_STEPS,
    envs=None,
    async_envs=False,
)
print(f"{TRAINING_STEPS:,} steps trained and evaluated in {time.perf_counter() - t0:.0f} s")
print({k: summary[k] for k in ("mean_return", "std_return", "random_mean_return")})

log = np.genfromtxt(Path(summary["run"]) / "log.csv", delimiter=",", names=True)
columns = log.dtype.names
print("logged:", columns)
returns = [c for c in columns if "return" in c]
if "step" in columns and returns:
    plt.plot(log["step"], log[returns[0]], "o-", label=f"this run ({returns[0]})")
    plt.axhline(summary["random_mean_return"], color="grey", linestyle=":", label="random policy")
    plt.axhline(
        spec.entry(f"{ENV.split('-')[0].lower()}-ppo").metrics["mean_return"],
        color="green",
        linestyle="--",
        label="shipped agent (card)",
    )
    plt.xlabel("environment steps")
    plt.ylabel("mean return")
    plt.legend()
    plt.show()
assert summary["mean_return"] > summary["random_mean_return"] + 3 * summary["random_std_return"]

# %% [markdown]
# ## The full recipes and the card's numbers
#
# The model card (`zoo/weights/rl.json`; `zoo.apps()` in Python, `zoo info rl` on the command
# line) records each agent's training command, its wall time, and the mean return over 100
# seeded greedy episodes beside a random policy on the same seeds.

# %%
zoo_cli(["info", "rl"])
card = spec.entry(f"{ENV.split('-')[0].lower()}-ppo")
print(
    f"{ENV} PPO: the card {card.metrics['mean_return']} over 100 episodes, "
    f"this notebook {shipped['mean_return']} over {EPISODES}"
)
assert abs(card.metrics["mean_return"] - shipped["mean_return"]) < 3 * card.metrics["std_return"] + 1
print(f"ran in {time.perf_counter() - start:.0f} s")

# %% [markdown]
# To reproduce or go further:
#
#     zoo train rl --algo ppo --env CartPole-v1 --steps 50000             # the shipped CartPole PPO agent
#     zoo train rl --algo ppo --env LunarLander-v3 --preset full          # the shipped lander
#     zoo evaluate rl --env LunarLander-v3 --episodes 100
#     zoo demo rl --env LunarLander-v3 -o landing.gif
