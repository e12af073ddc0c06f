# %% [markdown]
# # Automatic differentiation
#
# **Title:** Automatic differentiation<br>
# **Author:** keras-zoo contributors<br>
# **Date created:** 2026/12/06<br>
# **Last modified:** 2026/12/06<br>
# **Description:** Forward mode (dual numbers) and reverse mode (a tape) written from scratch in NumPy,
# checked against JAX, TensorFlow and finite differences; their costs as the number of inputs grows.
#
# Training a network needs the gradient of a loss with respect to millions of parameters,
# computed by a program with loops and branches. Automatic differentiation (AD) gets exact
# gradients from the program itself: every elementary operation knows its own derivative, and
# the chain rule composes them. There are two orders in which to apply the chain rule:
#
# - **forward mode** carries a derivative along with every value, from the inputs to the
#   output (one pass per input direction);
# - **reverse mode** records the operations on a *tape*, then walks it backwards from the
#   output (one pass per output). This is backpropagation, and what `tf.GradientTape` and
#   `jax.grad` do.
#
# We write both, in about a hundred lines of NumPy, then check them on the lecture's two
# examples against JAX, TensorFlow and finite differences.

# %% tags=["parameters"]
# Parameters. The defaults run in seconds.
MAX_INPUTS = 1024  # the largest input size in the forward/reverse cost comparison (4096: a clearer gap, ~1 min)
TRAINING_STEPS = 300  # gradient-descent steps for the logistic regression (its accuracy settles by ~100)
TOLERANCE = 1e-6  # how close every gradient must be to the others

# %%
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter
import jax
import matplotlib.pyplot as plt
import numpy as np
import tensorflow as tf
from sklearn.datasets import load_breast_cancer

jax.config.update("jax_enable_x64", True)  # float64 everywhere, so that 1e-6 is a fair tolerance
start = time.perf_counter()

# %% [markdown]
# ## The engine
#
# Both modes share the operator plumbing (`Number`), written in terms of four primitives each
# mode defines: `+`, `*`, `**` by a constant, `@`, `sum`, and `apply(f, df)`, an elementwise
# function with its derivative. `sin`, `cos`, `exp` and `log` then work on plain numbers,
# dual numbers and taped variables alike.
#
# **Forward mode.** A dual number is a pair $(v, \dot v)$: a value and its derivative along
# one chosen input direction. Each operation propagates both: $(a, \dot a) \cdot (b, \dot b) =
# (ab, \dot a b + a \dot b)$.
#
# **Reverse mode.** A `Var` remembers its parents and, for each, the function that carries the
# output's gradient back to it (the vector-Jacobian product). The `Tape` records every `Var`
# made while it is active; `tape.gradient` walks the records backwards, summing the gradient
# that flows into each variable from everything that used it.


# %%
class Number:
    """Operators both modes share, written with each mode's +, *, ** and apply."""

    __array_ufunc__ = None  # NumPy array (op) Number: let Number's reflected operator answer

    def __radd__(self, other):
        return self + other

    def __rmul__(self, other):
        return self * other

    def __neg__(self):
        return self * -1.0

    def __sub__(self, other):
        return self + (-other)

    def __rsub__(self, other):
        return -self + other

    def __truediv__(self, other):
        return self * (other**-1.0 if isinstance(other, Number) else 1.0 / other)

    def __rtruediv__(self, other):
        return self**-1.0 * other

    def __gt__(self, other):  # comparisons look at values: control flow follows the program's own path
        return self.value > getattr(other, "value", other)

    def __abs__(self):
        return self.apply(np.abs, np.sign)

    def mean(self):
        return self.sum() * (1.0 / self.value.size)


class Dual(Number):
    """Forward mode: a value and its derivative along one input direction."""

    def __init__(self, value, tangent=None):
        self.value = np.asarray(value, dtype=float)
        self.tangent = np.zeros_like(self.value) if tangent is None else np.asarray(tangent, dtype=float)

    def __add__(self, other):
        other = other if isinstance(other, Dual) else Dual(other)
        return Dual(self.value + other.value, self.tangent + other.tangent)

    def __mul__(self, other):
        other = other if isinstance(other, Dual) else Dual(other)
        return Dual(self.value * other.value, self.tangent * other.value + self.value * other.tangent)

    def __pow__(self, n):
        return Dual(self.value**n, n * self.value ** (n - 1) * self.tangent)

    def __matmul__(self, other):
        other = other if isinstance(other, Dual) else Dual(other)
        return Dual(self.value @ other.value, self.tangent @ other.value + self.value @ other.tangent)

    def __rmatmul__(self, other):
        return Dual(other) @ self

    def sum(self):
        return Dual(self.value.sum(), self.tangent.sum())

    def apply(self, f, df):
        return Dual(f(self.value), df(self.value) * self.tangent)


class Tape:
    """Reverse mode: records every Var made inside `with Tape() as tape:`."""

    active = None

    def __enter__(self):
        self.records, Tape.active = [], self
        return self

    def __exit__(self, *exc):
        Tape.active = None

    def gradient(self, target, sources):
        grads = {id(target): np.ones_like(target.value)}
        for node in reversed(self.records):  # every node comes after its parents: reversed is a valid order
            grad = grads.pop(id(node), None)
            for parent, vjp in node.parents if grad is not None else ():
                grads[id(parent)] = grads.get(id(parent), 0.0) + vjp(grad)
        return [grads.get(id(source), np.zeros_like(source.value)) for source in sources]


def unbroadcast(grad, shape):
    """Sum a gradient back to the shape of an operand that NumPy broadcast."""
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape)))) if grad.ndim > len(shape) else grad
    return grad.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True) if shape else grad


class Var(Number):
    """Reverse mode: a value, its parents and how to carry a gradient back to each."""

    def __init__(self, value, parents=()):
        self.value, self.parents = np.asarray(value, dtype=float), parents
        if parents and Tape.active is not None:
            Tape.active.records.append(self)

    def __add__(self, other):
        other = other if isinstance(other, Var) else Var(other)
        return Var(
            self.value + other.value,
            ((self, lambda g: unbroadcast(g, self.value.shape)), (other, lambda g: unbroadcast(g, other.value.shape))),
        )

    def __mul__(self, other):
        other = other if isinstance(other, Var) else Var(other)
        return Var(
            self.value * other.value,
            (
                (self, lambda g: unbroadcast(g * other.value, self.value.shape)),
                (other, lambda g: unbroadcast(g * self.value, other.value.shape)),
            ),
        )

    def __pow__(self, n):
        return Var(self.value**n, ((self, lambda g: g * n * self.value ** (n - 1)),))

    def __matmul__(self, other):  # a matrix times a vector: all that a linear model needs
        other = other if isinstance(other, Var) else Var(other)
        return Var(
            self.value @ other.value, ((self, lambda g: np.outer(g, other.value)), (other, lambda g: self.value.T @ g))
        )

    def __rmatmul__(self, other):
        return Var(other) @ self

    def sum(self):
        return Var(self.value.sum(), ((self, lambda g: np.broadcast_to(g, self.value.shape)),))

    def apply(self, f, df):
        return Var(f(self.value), ((self, lambda g: g * df(self.value)),))


def elementwise(f, df):
    return lambda x: x.apply(f, df) if isinstance(x, Number) else f(x)


sin = elementwise(np.sin, np.cos)
cos = elementwise(np.cos, lambda v: -np.sin(v))
exp = elementwise(np.exp, np.exp)
log = elementwise(np.log, lambda v: 1 / v)


def forward_gradient(f, x):
    """One forward pass per input: seed the tangent with each unit vector in turn."""
    x = np.asarray(x, dtype=float)
    return np.array([f(Dual(x, e)).tangent for e in np.eye(x.size)]).reshape(x.shape)


def reverse_gradient(f, x):
    """One forward pass recorded on the tape, one backward pass."""
    with Tape() as tape:
        x = Var(x)
        y = f(x)
    return tape.gradient(y, [x])[0]


def finite_differences(f, x, h=1e-6):
    x = np.asarray(x, dtype=float)
    steps = h * np.eye(x.size).reshape((x.size, *x.shape))
    return np.array([(f(x + step) - f(x - step)) / (2 * h) for step in steps]).reshape(x.shape)


# %% [markdown]
# ## Example 1: a sine computed by a `while` loop
#
# The lecture's first example is a function no table of derivatives lists: the Taylor series
# $\sin x = x - x^3/3! + x^5/5! - \dots$, summed *until the next term is negligible*. How many
# terms that takes depends on $x$. AD differentiates the path the program actually took, so the
# derivative of this loop should be $\cos x$. The one function below runs unchanged on floats,
# dual numbers, taped variables, JAX tracers and TensorFlow tensors.


# %%
def taylor_sine(x):
    term, total, n = x, x, 1
    while abs(term) > 1e-16:
        term = -term * x * x / ((2 * n) * (2 * n + 1))
        total = total + term
        n += 1
    return total


x0 = 2.0
tf_x = tf.Variable(x0, dtype=tf.float64)
with tf.GradientTape() as tf_tape:
    tf_sine = taylor_sine(tf_x)
derivatives = {
    "forward (dual numbers)": float(taylor_sine(Dual(x0, 1.0)).tangent),
    "reverse (our tape)": float(reverse_gradient(taylor_sine, x0)),
    "jax.grad": float(jax.grad(taylor_sine)(x0)),
    "tf.GradientTape": float(tf_tape.gradient(tf_sine, tf_x)),
    "finite differences": float(finite_differences(taylor_sine, x0)),
}
print(f"sin({x0}) by the loop: {taylor_sine(x0):.12f}   numpy: {np.sin(x0):.12f}")
for name, value in derivatives.items():
    print(f"d/dx {name:>22}: {value:.12f}   error against cos(x): {abs(value - np.cos(x0)):.1e}")
    assert abs(value - np.cos(x0)) < TOLERANCE

xs = np.linspace(-10, 10, 201)
loop_derivative = [float(taylor_sine(Dual(x, 1.0)).tangent) for x in xs]
assert np.allclose(loop_derivative, np.cos(xs), atol=TOLERANCE)  # on the whole range, not one lucky point
plt.plot(xs, [taylor_sine(x) for x in xs], label="taylor_sine(x)")
plt.plot(xs, loop_derivative, label="its derivative, forward mode")
plt.plot(xs[::8], np.cos(xs[::8]), "k.", label="cos(x)")
plt.legend()
plt.title("The derivative of a while loop")
plt.show()

# %% [markdown]
# ## Example 2: logistic regression trained by its own gradient
#
# The second example is a model: the probability that a breast mass is malignant, from 30
# measurements of its cell nuclei (the Wisconsin diagnostic dataset that ships with
# scikit-learn, 569 cases), $p = \sigma(x \cdot w + b)$, with the cross-entropy loss
# $\frac{1}{n}\sum_i \log(1 + e^{z_i}) - t_i z_i$ where $z = Xw + b$. Its gradient with respect
# to all 31 parameters comes from the tape in one backward pass; forward mode needs 31 passes.
# All five answers must agree.

# %%
cancer = load_breast_cancer()
order = np.random.default_rng(0).permutation(len(cancer.target))
train, test = order[:400], order[400:]
mu, sigma = cancer.data[train].mean(0), cancer.data[train].std(0)
features, labels = (cancer.data[train] - mu) / sigma, cancer.target[train].astype(float)
test_features, test_labels = (cancer.data[test] - mu) / sigma, cancer.target[test]


def cross_entropy(w, b, log=log, exp=exp):
    z = features @ w + b
    return (log(1 + exp(z)) - labels * z).mean()


def tape_gradient(w, b):
    """All 31 partial derivatives from one backward pass, as one vector."""
    with Tape() as tape:
        w, b = Var(w), Var(b)
        loss = cross_entropy(w, b)
    return np.append(*tape.gradient(loss, [w, b]))


w0, b0 = np.random.default_rng(1).normal(scale=0.1, size=30), 0.1
tf_w, tf_b = tf.Variable(w0), tf.Variable(b0, dtype=tf.float64)
with tf.GradientTape() as tf_tape:  # the same loss in TensorFlow's words
    z = tf.linalg.matvec(features, tf_w) + tf_b
    tf_loss = tf.reduce_mean(tf.math.log(1 + tf.exp(z)) - labels * z)
jax_loss = jax.grad(lambda w, b: cross_entropy(w, b, log=jax.numpy.log, exp=jax.numpy.exp), argnums=(0, 1))
unit_vectors = np.eye(31)
gradients = {
    "reverse (our tape)": tape_gradient(w0, b0),
    "forward (31 passes)": np.array([cross_entropy(Dual(w0, e[:-1]), Dual(b0, e[-1])).tangent for e in unit_vectors]),
    "jax.grad": np.append(*jax_loss(w0, b0)),
    "tf.GradientTape": np.append(*[g.numpy() for g in tf_tape.gradient(tf_loss, [tf_w, tf_b])]),
    "finite differences": finite_differences(lambda p: cross_entropy(p[:-1], p[-1]), np.append(w0, b0)),
}
for name, grad in gradients.items():
    error = np.abs(grad - gradients["reverse (our tape)"]).max()
    print(f"{name:>20}: |grad| = {np.linalg.norm(grad):.9f}, largest difference from the tape's: {error:.1e}")
    assert error < TOLERANCE

# %% [markdown]
# Now train it: plain gradient descent, every gradient from our tape.

# %%
w, b = np.zeros(30), 0.0
losses = []
for _ in range(TRAINING_STEPS):
    losses.append(cross_entropy(w, b))
    step = 0.5 * tape_gradient(w, b)
    w, b = w - step[:-1], b - step[-1]
accuracy = np.mean(((test_features @ w + b) > 0) == test_labels)
print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}; held-out accuracy {accuracy:.3f} on {len(test)} cases")
plt.plot(losses)
plt.xlabel("gradient-descent step")
plt.ylabel("training cross-entropy")
plt.show()
assert losses[-1] < 0.1 and accuracy > 0.95

# %% [markdown]
# ## The cost of forward against reverse mode
#
# For $f: \mathbb{R}^n \to \mathbb{R}$ (a loss of $n$ parameters), forward mode needs one pass
# per input, reverse mode one pass forward and one back, whatever $n$. Measure both on
# $f(x) = \sum_i \sin(x_i)\, x_i^2$ as $n$ grows. (For a function with one input and many
# outputs it is the other way round; a network's loss is the first kind, which is why
# deep learning runs on reverse mode.)


# %%
def f(x):
    return (sin(x) * x**2).sum()


def best_time(compute, repeats=3):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        compute()
        times.append(time.perf_counter() - t0)
    return min(times)


sizes = 2 ** np.arange(0, int(np.log2(MAX_INPUTS)) + 1)
forward_times, reverse_times = [], []
for n in sizes:
    x = np.random.default_rng(n).normal(size=n)
    assert np.allclose(forward_gradient(f, x), reverse_gradient(f, x), atol=1e-12)
    forward_times.append(best_time(lambda x=x: forward_gradient(f, x)))
    reverse_times.append(best_time(lambda x=x: reverse_gradient(f, x)))
    print(f"n = {n:5d}: forward {forward_times[-1] * 1e3:8.2f} ms, reverse {reverse_times[-1] * 1e3:6.3f} ms")

plt.loglog(sizes, forward_times, "o-", label="forward mode (n passes)")
plt.loglog(sizes, reverse_times, "o-", label="reverse mode (1 pass + 1 back)")
plt.xlabel("number of inputs n")
plt.ylabel("seconds for the whole gradient")
plt.legend()
plt.show()

big = sizes >= 64
forward_slope = np.polyfit(np.log(sizes[big]), np.log(np.array(forward_times)[big]), 1)[0]
reverse_slope = np.polyfit(np.log(sizes[big]), np.log(np.array(reverse_times)[big]), 1)[0]
print(
    f"growth with n (log-log slope): forward {forward_slope:.2f}, reverse {reverse_slope:.2f}; "
    f"at n = {sizes[-1]}, forward takes {forward_times[-1] / reverse_times[-1]:.0f}x longer"
)
assert forward_slope > 0.7 and reverse_slope < 0.5  # forward grows with n, reverse barely does
assert forward_times[-1] > 20 * reverse_times[-1]
print(f"ran in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# Forward mode's slope is about 2, not 1: it makes $n$ passes, and here each pass itself works
# on all $n$ inputs, so its cost grows like $n^2$ against reverse mode's $n$.
#
# ## What to take away
#
# - AD is exact (to rounding, unlike finite differences) and follows the program's own control
#   flow: the `while` loop's derivative is $\cos x$ wherever the loop stops.
# - Forward mode costs one pass per input; reverse mode one pass per output, at the price of
#   remembering the forward pass (the tape). A loss has one output: reverse mode.
# - `tf.GradientTape` and `jax.grad` are industrial versions of the forty-line `Tape` above;
#   `keras_programming.py` uses them to train networks.
