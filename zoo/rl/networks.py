"""The agents' networks: Keras models for training, NumPy copies for acting.

`build_model` gives DQN's Q network or PPO's policy and value networks, all
small MLPs. Acting, which runs once per environment step, goes through
`NumpyMLP`, a NumPy snapshot of one of those MLPs, rather than `model(state)`.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from zoo.errors import BadInput
from zoo.rl.envs import Spaces

ALGOS = ("dqn", "ppo")  # also the models' names, which is how a loaded file tells its algorithm


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
    stack = [
        layers.Dense(
            units,
            activation=activation,
            kernel_initializer=keras.initializers.Orthogonal(np.sqrt(2)),
            name=f"{name}_{i}",
        )
        for i, units in enumerate(hidden)
    ]
    return stack + [
        layers.Dense(outputs, kernel_initializer=keras.initializers.Orthogonal(output_gain), name=f"{name}_out")
    ]


def build_model(algo: str, spaces: Spaces, hidden: tuple[int, ...] = (64, 64)) -> keras.Model:
    """DQN: observation -> one Q value per action. PPO: observation -> [policy parameters, value].

    PPO's policy and value networks are separate MLPs (named `policy` and
    `value`); the policy outputs logits (discrete) or means and log standard
    deviations (Box). One output tensor lets one Keras loss see both.
    """
    observation = keras.Input((spaces.observation_size,), name="observation")
    if algo == "dqn":
        if not spaces.discrete:
            raise BadInput(
                f"{spaces.env_id}: DQN needs a discrete action space; this one is continuous (use --algo ppo)"
            )
        q_values = keras.Sequential(_mlp(hidden, "relu", spaces.action_size, 1.0, "q"), name="q_values")
        return keras.Model(observation, q_values(observation), name="dqn")
    policy_layers = _mlp(hidden, "tanh", spaces.action_size, 0.01, "policy")
    if not spaces.discrete:
        policy_layers.append(DiagonalGaussian(name="log_std"))
    policy = keras.Sequential(policy_layers, name="policy")
    value = keras.Sequential(_mlp(hidden, "tanh", 1, 1.0, "value"), name="value")
    outputs = layers.Concatenate(name="policy_and_value")([policy(observation), value(observation)])
    return keras.Model(observation, outputs, name="ppo")


class NumpyMLP:
    """A snapshot of a Sequential of Dense layers, evaluated in NumPy.

    On a handful of states a small MLP is far cheaper in NumPy than through
    `model(state)`, which pays Keras's per-call overhead; acting runs once per
    environment step, so this is where an RL loop's time goes.
    """

    ACTIVATIONS = {"linear": lambda x: x, "relu": lambda x: np.maximum(x, 0), "tanh": np.tanh}

    def __init__(self, stack: keras.Sequential):
        self.steps = []
        for layer in stack.layers:
            if isinstance(layer, DiagonalGaussian):
                self.steps.append(("log_std", ops.convert_to_numpy(layer.log_std)))
            else:
                self.steps.append(
                    (
                        self.ACTIVATIONS[layer.activation.__name__],
                        ops.convert_to_numpy(layer.kernel),
                        ops.convert_to_numpy(layer.bias),
                    )
                )

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
        spaces.action_size * (1 if spaces.discrete else 2)
    ):
        raise BadInput(
            f"{spaces.env_id}: this {algo} model was trained on another environment "
            f"(it takes {expected} observation values)"
        )
    if spaces.discrete:
        return lambda observations: net(observations).argmax(axis=-1)
    return lambda observations: net(observations)[:, : spaces.action_size]


def sample_actions(spaces: Spaces, params: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Draw from the policy: Gumbel-max for logits, mean + std * noise for a Gaussian."""
    if spaces.discrete:
        return (params + rng.gumbel(size=params.shape)).argmax(axis=-1)
    means, log_std = params[:, : spaces.action_size], params[:, spaces.action_size :]
    return (means + np.exp(log_std) * rng.standard_normal(means.shape)).astype(np.float32)
