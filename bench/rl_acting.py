"""Environment steps per second of the zoo's acting loop against the keras-io pattern, in one run.

The keras-io RL examples call the Keras model once per environment step
(`model(state)` or `model.predict(state)`). The zoo steps a vector of
environments together and evaluates a NumPy copy of the policy network
(`zoo.rl.networks.NumpyMLP`). Each variant below plays CartPole-v1 with the same
PPO policy network (sampling actions from its logits) for a fixed number of
environment steps; the ratio is against `model(state)` per step.

    flock /tmp/zoo-cpu.lock .venv/bin/python bench/rl_acting.py [--steps 4000] [--envs 8]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from zoo.rl import networks, ppo  # noqa: E402
from zoo.rl.envs import env_spaces, make_env, make_vector_env  # noqa: E402

ENV = "CartPole-v1"


def keras_io_loop(model: keras.Model, steps: int, call) -> float:
    """One environment, the model called once per step: keras-io's pattern."""
    env = make_env(ENV)
    rng = np.random.default_rng(0)
    observation, _ = env.reset(seed=0)
    started = time.perf_counter()
    for _ in range(steps):
        logits = keras.ops.convert_to_numpy(call(model, observation[None]))[0, :-1]
        action = int((logits + rng.gumbel(size=logits.shape)).argmax())
        observation, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            observation, _ = env.reset()
    return steps / (time.perf_counter() - started)


def zoo_loop(model: keras.Model, steps: int, envs: int) -> float:
    """The zoo's acting loop: `envs` environments stepped together, the policy in NumPy."""
    spaces = env_spaces(ENV)
    env = make_vector_env(ENV, envs)
    policy = networks.NumpyMLP(model.get_layer("policy"))
    rng = np.random.default_rng(0)
    observations, _ = env.reset(seed=0)
    started = time.perf_counter()
    for _ in range(steps // envs):
        actions = networks.sample_actions(spaces, policy(observations.astype(np.float32)), rng)
        observations, *_ = env.step(actions)
    return (steps // envs * envs) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=4000, help="environment steps per variant")
    parser.add_argument("--envs", type=int, default=8, help="environments stepped together by the zoo's loop")
    args = parser.parse_args()
    model = networks.build_model("ppo", env_spaces(ENV), ppo.PPOConfig().hidden)
    variants = {
        "keras-io: model(state) per step": lambda: keras_io_loop(model, args.steps, lambda m, x: m(x, training=False)),
        "keras-io: model.predict per step": lambda: keras_io_loop(
            model, max(args.steps // 20, 50), lambda m, x: m.predict(x, verbose=0)
        ),
        "zoo: NumPy policy, 1 env": lambda: zoo_loop(model, args.steps * 5, 1),
        f"zoo: NumPy policy, {args.envs} envs (vector)": lambda: zoo_loop(model, args.steps * 10, args.envs),
    }
    for call in (lambda m, x: m(x, training=False), lambda m, x: m.predict(x, verbose=0)):
        keras_io_loop(model, 20, call)  # warm up: tracing and first calls are not what we measure
    print(f"{ENV}, {keras.backend.backend()} backend, {os.cpu_count()} CPUs; environment steps per second:")
    results = {name: run() for name, run in variants.items()}
    baseline = results["keras-io: model(state) per step"]
    for name, rate in results.items():
        print(f"  {name:<40} {rate:>10.0f} steps/s   {rate / baseline:6.1f}x")


if __name__ == "__main__":
    main()
