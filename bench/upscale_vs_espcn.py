"""keras-io's ESPCN trained on this machine for a fixed CPU budget, against the shipped upscale models,
at x2, x3 and x4, on the held-out smooth photos and on the texture set.

ESPCN trains on the same patch stream as the zoo's models (zoo.vision.upscale.PatchDataset over
the same training photos, seed 0) for `--seconds` of wall-clock time per scale, then both are
evaluated with the same tiled inference beside bicubic. The issue's target: at every scale and on
both sets, the shipped model's Y-PSNR gain over bicubic at least 0.5 dB above ESPCN's.
`--same-time` also trains the zoo's quick model for the same budget (an equal-effort comparison).

    python bench/upscale_vs_espcn.py [--seconds 600] [--scales 2 3 4] [--same-time]
"""

import argparse
import time

import keras
from keras import layers

from zoo.vision import upscale

MARGIN_DB = 0.5


def espcn(scale: int) -> keras.Model:
    """The keras-io example's network: 5x5/64, 3x3/64, 3x3/32, 3x3/scale^2, depth-to-space."""
    low = keras.Input((None, None, 1))
    init = dict(kernel_initializer="orthogonal", padding="same")
    x = layers.Conv2D(64, 5, activation="relu", **init)(low)
    x = layers.Conv2D(64, 3, activation="relu", **init)(x)
    x = layers.Conv2D(32, 3, activation="relu", **init)(x)
    x = layers.Conv2D(scale**2, 3, **init)(x)
    return keras.Model(low, upscale.DepthToSpace(scale)(x), name="espcn")


class TimeBudget(keras.callbacks.Callback):
    def __init__(self, seconds: float):
        super().__init__()
        self.seconds, self.steps = seconds, 0

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


def train_for(model: keras.Model, loss: str, photos: list, scale: int, seconds: float) -> int:
    config = upscale.PRESETS["quick"]
    patches = upscale.PatchDataset(photos, scale, config.patch, config.batch_size, 100, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    budget = TimeBudget(seconds)
    model.fit(patches, epochs=10_000, callbacks=[budget], verbose=0)
    return budget.steps


def gains(model: keras.Model) -> dict[str, float]:
    metrics = upscale.evaluate_offline(model)
    return {"smooth": metrics["gain_db"], "texture": metrics["texture"]["gain_db"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--scales", type=int, nargs="+", default=list(upscale.SCALES))
    parser.add_argument("--same-time", action="store_true", help="also train the zoo's quick model as long")
    args = parser.parse_args()
    photos, _, _ = upscale.training_photos(None)
    print(
        f"ESPCN budget: {args.seconds:.0f} s per scale; Y-PSNR gain over bicubic (dB) on the 4 held-out smooth "
        f"photos / the 4 texture windows; target: shipped >= ESPCN + {MARGIN_DB} dB"
    )
    print("scale  set      espcn (steps)   shipped  shipped-espcn  target" + ("  zoo same time" * args.same_time))
    for scale in args.scales:
        keras.utils.set_random_seed(0)
        plain = espcn(scale)
        steps = train_for(plain, "mean_squared_error", photos, scale, args.seconds)
        anchor, shipped = gains(plain), gains(upscale.load(None, scale))
        if args.same_time:
            keras.utils.set_random_seed(0)
            ours = upscale.build_model(upscale.Config(scale=scale))
            ours_steps = train_for(ours, "mean_absolute_error", photos, scale, args.seconds)
            same_time = gains(ours)
        for name in ("smooth", "texture"):
            margin = shipped[name] - anchor[name]
            print(
                f"x{scale}     {name:8} {anchor[name]:+6.2f} ({steps:5d})  {shipped[name]:+7.2f}  {margin:+12.2f}"
                f"  {'met' if margin >= MARGIN_DB else 'MISSED':>6}"
                + (f"  {same_time[name]:+6.2f} ({ours_steps} steps)" if args.same_time else ""),
                flush=True,
            )


if __name__ == "__main__":
    main()
