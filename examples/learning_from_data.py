# %% [markdown]
# # Learning from data and optimisation
#
# **Title:** Learning from data and optimisation<br>
# **Author:** keras-zoo contributors<br>
# **Date created:** 2026/12/06<br>
# **Last modified:** 2026/12/06<br>
# **Description:** A model family, a loss and a real dataset; gradient descent by hand; SGD, momentum and
# Adam on one loss surface; what a learning rate too large or too small does, measured.
#
# Learning from data is three choices and one algorithm. The choices: a **model family**
# (here, straight lines $f_\theta(x) = w x + b$), a **loss** that says how wrong a member of the
# family is on the data (the mean squared error), and the **data**. The algorithm: walk the
# parameters $\theta = (w, b)$ downhill on the loss, following its gradient.
#
# Everything below is NumPy, written out so that each step can be read. Each section ends with
# `assert`s that fail if a number is wrong, so running this file (`python
# examples/learning_from_data.py`) checks it.

# %% tags=["parameters"]
# Parameters. The defaults run in seconds; the longer settings are in the comments.
STEPS = 300  # optimiser steps per path (1000 shows Adam's and SGD's endgame more clearly)
BATCH = 32  # SGD's minibatch size (1 is the noisiest, the full 331 training patients is plain gradient descent)
SEED = 0  # shuffles the train/test split and SGD's minibatches

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_diabetes

rng = np.random.default_rng(SEED)
start = time.perf_counter()

# %% [markdown]
# ## The data: body-mass index and diabetes progression
#
# scikit-learn ships a real dataset of 442 diabetes patients (Efron et al., "Least Angle
# Regression", 2004): ten baseline measurements each and, one year later, a measure of how
# far the disease progressed. We predict the progression from one measurement, the body-mass
# index (BMI), so that the loss surface has two parameters and can be drawn. The units are
# scaled to keep the numbers near 1: BMI in tens of kg/m², progression in hundreds.
# A quarter of the patients are held out to measure what was learnt.

# %%
diabetes = load_diabetes(scaled=False)
bmi = diabetes.data[:, diabetes.feature_names.index("bmi")] / 10
progression = diabetes.target / 100
order = rng.permutation(len(bmi))
train, test = order[: 3 * len(order) // 4], order[3 * len(order) // 4 :]
x, y = bmi[train], progression[train]
x_test, y_test = bmi[test], progression[test]
print(f"{len(x)} training patients, {len(x_test)} held out; BMI {bmi.min() * 10:.0f}-{bmi.max() * 10:.0f} kg/m²")

plt.scatter(x * 10, y * 100, s=8, alpha=0.6)
plt.xlabel("body-mass index (kg/m²)")
plt.ylabel("disease progression after one year")
plt.title("442 patients (scikit-learn's diabetes dataset)")
plt.show()

# %% [markdown]
# ## The model family and the loss
#
# A member of the family is a pair $(w, b)$; its loss on the data is the mean squared error
#
# $$L(w, b) = \frac{1}{n} \sum_i (w x_i + b - y_i)^2 .$$
#
# Its gradient, by the chain rule, is
#
# $$\frac{\partial L}{\partial w} = \frac{2}{n} \sum_i (w x_i + b - y_i)\, x_i, \qquad
#   \frac{\partial L}{\partial b} = \frac{2}{n} \sum_i (w x_i + b - y_i).$$
#
# We check the hand-written gradient against finite differences before trusting it.


# %%
def loss(theta, x=x, y=y):
    w, b = theta
    return np.mean((w * x + b - y) ** 2)


def gradient(theta, x=x, y=y):
    w, b = theta
    error = w * x + b - y
    return np.array([2 * np.mean(error * x), 2 * np.mean(error)])


def finite_differences(f, theta, h=1e-6):
    return np.array([(f(theta + h * e) - f(theta - h * e)) / (2 * h) for e in np.eye(len(theta))])


theta0 = np.array([-1.0, 3.0])  # a deliberately poor first guess
print("hand-written gradient:", gradient(theta0), " finite differences:", finite_differences(loss, theta0))
assert np.allclose(gradient(theta0), finite_differences(loss, theta0), atol=1e-6)

# %% [markdown]
# For this family the best line also has a closed form (least squares), which gives us the
# exact minimum to measure every optimiser against.

# %%
design = np.stack([x, np.ones_like(x)], axis=1)
theta_best = np.linalg.lstsq(design, y, rcond=None)[0]
loss_best = loss(theta_best)
slope, intercept = theta_best[0] * 10, theta_best[1] * 100  # back in the data's own units
print(f"best line: progression = {slope:.2f} x BMI {intercept:+.1f}; training MSE {loss_best:.4f}")
assert np.allclose(gradient(theta_best), 0, atol=1e-10)  # the minimum is where the gradient vanishes

# %% [markdown]
# ## Gradient descent, by hand
#
# Start somewhere, step against the gradient, repeat: $\theta \leftarrow \theta - \eta \nabla L(\theta)$.
# How large a step $\eta$ may be is set by the curvature of the loss. For a squared error the
# curvature is the same everywhere, the Hessian
# $H = \frac{2}{n}\sum_i \begin{pmatrix} x_i^2 & x_i \\ x_i & 1 \end{pmatrix}$, and gradient
# descent converges exactly when $\eta < 2 / \lambda_{\max}(H)$.

# %%
hessian = 2 * design.T @ design / len(x)
curvatures = np.linalg.eigvalsh(hessian)
print(
    f"curvatures (Hessian eigenvalues): {curvatures[0]:.4f} and {curvatures[1]:.2f}; "
    f"condition number {curvatures[1] / curvatures[0]:.0f}"
)


def gradient_descent(theta, learning_rate, steps, gradient=gradient):
    path = [theta]
    for _ in range(steps):
        theta = theta - learning_rate * gradient(theta)
        path.append(theta)
    return np.array(path)


gd_rate = 1 / curvatures[1]
gd_path = gradient_descent(theta0, gd_rate, STEPS)
print(f"gradient descent, {STEPS} steps at {gd_rate:.3f}: loss {loss(gd_path[-1]):.4f} (best {loss_best:.4f})")
assert loss(gd_path[-1]) < loss(theta0) / 5  # it learnt something...
assert np.all(np.diff([loss(t) for t in gd_path]) <= 1e-12)  # ...going downhill at every step

# %% [markdown]
# The loss fell at every step, yet it has not reached the minimum. The condition number
# printed above says why: the surface is a long, narrow valley (BMI is never near zero, so
# moving $w$ and $b$ together barely changes the loss), a step small enough for its steep
# walls crawls along its flat floor.
#
# ## SGD, momentum and Adam on the same surface
#
# Three standard answers, written out in a few lines each:
#
# - **SGD** follows the gradient of a random minibatch: cheaper steps, noisy directions.
# - **Momentum** (heavy ball) accumulates a velocity, so consistent directions (the valley floor)
#   speed up and oscillating ones (across the walls) cancel.
# - **Adam** (Kingma and Ba, 2015) divides each coordinate's step by a running estimate of
#   that coordinate's gradient size, so flat directions get larger steps.


# %%
def sgd(theta, learning_rate, steps, batch=BATCH):
    path = [theta]
    for _ in range(steps):
        idx = rng.choice(len(x), size=batch, replace=False)
        theta = theta - learning_rate * gradient(theta, x[idx], y[idx])
        path.append(theta)
    return np.array(path)


def momentum(theta, learning_rate, steps, beta=0.9):
    velocity = np.zeros_like(theta)
    path = [theta]
    for _ in range(steps):
        velocity = beta * velocity - learning_rate * gradient(theta)
        theta = theta + velocity
        path.append(theta)
    return np.array(path)


def adam(theta, learning_rate, steps, beta1=0.9, beta2=0.999, eps=1e-8):
    m, v = np.zeros_like(theta), np.zeros_like(theta)
    path = [theta]
    for t in range(1, steps + 1):
        g = gradient(theta)
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g**2
        m_hat, v_hat = m / (1 - beta1**t), v / (1 - beta2**t)  # bias correction: m and v start at 0
        theta = theta - learning_rate * m_hat / (np.sqrt(v_hat) + eps)
        path.append(theta)
    return np.array(path)


paths = {
    "gradient descent": gd_path,
    f"SGD (batch {BATCH})": sgd(theta0, gd_rate, STEPS),
    "momentum 0.9": momentum(theta0, gd_rate / 2, STEPS),  # heavy ball is stable up to (1 + beta) * 2 / lambda_max
    "Adam": adam(theta0, 0.05, STEPS),
}
gaps = {name: loss(path[-1]) - loss_best for name, path in paths.items()}
for name, gap in gaps.items():
    print(f"{name:>18}: loss above the minimum after {STEPS} steps: {gap:.2e}")

ws, bs = np.meshgrid(np.linspace(-1.5, 2.5, 200), np.linspace(-4, 4.5, 200))
surface = np.mean((ws[..., None] * x + bs[..., None] - y) ** 2, axis=-1)
plt.figure(figsize=(7, 5.5))
plt.contour(ws, bs, np.log(surface - loss_best + 1e-3), levels=25, cmap="Greys", linewidths=0.7)
for name, path in paths.items():
    plt.plot(path[:, 0], path[:, 1], ".-", markersize=2, linewidth=1, label=name)
plt.plot(*theta_best, "k*", markersize=14, label="least squares")
plt.xlabel("w (slope)")
plt.ylabel("b (intercept)")
plt.title(f"{STEPS} steps on the loss surface (contours of log excess loss)")
plt.legend()
plt.show()

assert gaps["momentum 0.9"] < gaps["gradient descent"] / 10  # momentum runs along the valley floor
assert gaps["Adam"] < gaps["gradient descent"]
assert gaps[f"SGD (batch {BATCH})"] < loss(theta0) - loss_best  # noisy, but downhill

# %% [markdown]
# ## A learning rate too small, too large, measured
#
# Theory says gradient descent diverges once $\eta > 2/\lambda_{\max}$. Measure it: run the
# same number of steps at learning rates from a ten-thousandth of that limit to just past it.

# %%
limit = 2 / curvatures[1]
fractions = np.array([0.0001, 0.001, 0.01, 0.1, 0.3, 0.5, 0.9, 0.99, 1.01, 1.05])
final_gaps = np.array([loss(gradient_descent(theta0, f * limit, STEPS)[-1]) - loss_best for f in fractions])
start_gap = loss(theta0) - loss_best
for f, gap in zip(fractions, final_gaps):
    verdict = "diverged" if gap > start_gap else "barely moved" if gap > start_gap / 2 else ""
    print(f"learning rate {f:6.4f} x 2/lambda_max = {f * limit:.4f}: excess loss {gap:10.3e}  {verdict}")

plt.loglog(fractions, final_gaps, "o-")
plt.axvline(1, color="red", linestyle="--", label="2 / largest curvature")
plt.axhline(start_gap, color="grey", linestyle=":", label="where it started")
plt.xlabel("learning rate, as a fraction of 2 / lambda_max")
plt.ylabel(f"excess loss after {STEPS} steps")
plt.legend()
plt.show()

assert final_gaps[fractions == 0.0001][0] > start_gap / 2  # too small: barely moved
assert np.all(final_gaps[fractions > 1] > start_gap)  # too large: worse than where it started
assert np.all(final_gaps[(fractions >= 0.3) & (fractions < 1)] < final_gaps[fractions == 0.01])

# %% [markdown]
# The best learning rates sit just under the limit, and even they leave a gap: the flat
# direction's curvature is hundreds of times smaller. **Standardising the input** (subtract
# its mean, divide by its standard deviation) makes the two curvatures equal, and the same
# gradient descent then lands on the minimum in a handful of steps. This is why every app in
# the zoo normalises its inputs.

# %%
x_mean, x_std = x.mean(), x.std()
z = (x - x_mean) / x_std
z_design = np.stack([z, np.ones_like(z)], axis=1)
z_curvatures = np.linalg.eigvalsh(2 * z_design.T @ z_design / len(z))
print(f"standardised: curvatures {z_curvatures[0]:.3f} and {z_curvatures[1]:.3f}")

z_path = gradient_descent(np.zeros(2), 1 / z_curvatures[1], 20, gradient=lambda t: gradient(t, z, y))
w_z, b_z = z_path[-1]
theta_from_z = np.array([w_z / x_std, b_z - w_z * x_mean / x_std])  # the same line, in the original units
print(f"20 steps on standardised BMI: excess loss {loss(theta_from_z) - loss_best:.1e}")
assert np.allclose(z_curvatures, 2)  # both equal: a round bowl
assert loss(theta_from_z) - loss_best < 1e-10

# %% [markdown]
# ## What was learnt: the held-out patients
#
# The point of the loss was never the training data. On the held-out quarter, the line beats
# the best constant guess (the training mean), and a larger family, a linear model of all
# ten measurements, fitted by the same gradient descent on standardised inputs, does better
# still.


# %%
def test_mse(predict):
    return np.mean((predict - y_test) ** 2)


all_train, all_test = diabetes.data[train], diabetes.data[test]
mu, sigma = all_train.mean(0), all_train.std(0)
features, features_test = (all_train - mu) / sigma, (all_test - mu) / sigma


def linear_gradient(theta):  # theta = 10 weights then the intercept
    error = features @ theta[:-1] + theta[-1] - y
    return np.append(2 * features.T @ error / len(y), 2 * error.mean())


ten_curvature = np.linalg.eigvalsh(2 * features.T @ features / len(y)).max()
theta_ten = gradient_descent(np.zeros(11), 1 / max(ten_curvature, 2), 2000, gradient=linear_gradient)[-1]

results = {
    "constant (training mean)": test_mse(np.full_like(y_test, y.mean())),
    "line on BMI": test_mse(theta_best[0] * x_test + theta_best[1]),
    "linear, all ten measurements": test_mse(features_test @ theta_ten[:-1] + theta_ten[-1]),
}
for name, mse in results.items():
    print(f"{name:>30}: held-out MSE {mse:.4f}  (R² {1 - mse / results['constant (training mean)']:.3f})")
assert results["line on BMI"] < 0.9 * results["constant (training mean)"]
assert results["linear, all ten measurements"] < results["line on BMI"]
print(f"ran in {time.perf_counter() - start:.1f} s")

# %% [markdown]
# ## What to take away
#
# - A learning problem is a model family, a loss and data; training is optimisation of the loss.
# - Gradient descent's step size is bounded by the loss's largest curvature; its speed is set by
#   the ratio of largest to smallest (the condition number).
# - Momentum and Adam are two ways round a bad condition number; normalising the inputs removes it.
# - The loss on held-out data is the number that counts.
#
# Next: `automatic_differentiation.py` computes gradients like the ones written by hand here,
# for any program, and `keras_programming.py` lets Keras do both.
