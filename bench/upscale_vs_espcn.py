"""Same photos, same CPU seconds: keras-io's ESPCN against the zoo's upscale model, at x2, x3 and x4.

Both train on the same patch stream (zoo.vision.upscale.PatchDataset, same seed) for the
same wall-clock budget on this machine, then are evaluated on the same 4 held-out photos
with the same tiled inference, beside bicubic and the shipped weights.

    python bench/upscale_vs_espcn.py [--seconds 120] [--scales 2 3 4]
"""

import argparse
import time

import keras
from keras import layers

from zoo.data import photos
from zoo.vision import upscale


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


def train_for(model: keras.Model, loss: str, scale: int, seconds: float) -> int:
    config = upscale.PRESETS["quick"]
    train_photos, _ = upscale.training_photos(None)
    patches = upscale.PatchDataset(train_photos, scale, config.patch, config.batch_size, 100, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=loss)
    budget = TimeBudget(seconds)
    model.fit(patches, epochs=10_000, callbacks=[budget], verbose=0)
    return budget.steps


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--scales", type=int, nargs="+", default=list(upscale.SCALES))
    args = parser.parse_args()
    held_out = photos.sample_photos("test")
    print(f"training budget: {args.seconds:.0f} s per model per scale; Y-PSNR on {len(held_out)} held-out photos")
    print("scale  bicubic  espcn(same time)  zoo(same time)  zoo-espcn  shipped  shipped-espcn")
    for scale in args.scales:
        keras.utils.set_random_seed(0)
        plain = espcn(scale)
        espcn_steps = train_for(plain, "mean_squared_error", scale, args.seconds)
        keras.utils.set_random_seed(0)
        ours = upscale.build_model(upscale.Config(scale=scale))
        zoo_steps = train_for(ours, "mean_absolute_error", scale, args.seconds)
        plain_m = upscale.evaluate_model(plain, held_out)
        ours_m = upscale.evaluate_model(ours, held_out)
        shipped_m = upscale.evaluate_model(upscale.load(None, scale), held_out)
        print(f"x{scale}     {plain_m['bicubic_psnr_y']:6.2f}   {plain_m['psnr_y']:6.2f} ({espcn_steps:5d} st)"
              f"   {ours_m['psnr_y']:6.2f} ({zoo_steps:5d} st)  {ours_m['psnr_y'] - plain_m['psnr_y']:+6.2f} dB"
              f"  {shipped_m['psnr_y']:6.2f}  {shipped_m['psnr_y'] - plain_m['psnr_y']:+6.2f} dB", flush=True)


if __name__ == "__main__":
    main()
