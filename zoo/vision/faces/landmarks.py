"""dlib's 5-point face landmarks and face-chip alignment, in NumPy (no dlib needed).

Landmarks: `shape_predictor_5_face_landmarks.dat` is an ensemble of regression trees
(Kazemi and Sullivan, "One Millisecond Face Alignment with an Ensemble of Regression
Trees", CVPR 2014), read here with `dlib_format.Reader` (dlib/image_processing/
shape_predictor.h). A face box maps the unit square onto the image; starting from the mean
shape, each cascade level samples grey pixels at offsets anchored to the current landmarks
(offsets rotated and scaled by the similarity transform from the mean shape to the current
one), and every tree adds the leaf its pixel-difference tests reach.

Alignment: dlib's `get_face_chip_details(shape, 150, 0.25)` fits a similarity transform
from five template points (dlib's constants, padded by 25%) to the landmarks, and
`extract_image_chip` samples the rotated square bilinearly, first halving the image with a
5-tap pyramid while the square is more than twice the chip's side, so a large face is not
aliased. Points are (x, y) in pixels throughout.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import numpy as np

from zoo.data.download import cache_dir
from zoo.errors import BadInput
from zoo.vision.faces import dlib_format

CHIP_SIDE = 150  # dlib's chip, what its ResNet embeds
# dlib's template for the 5-point model: two corners of each eye and the base of the nose.
CHIP_TEMPLATE = np.array(
    [
        [0.8595674595992, 0.2134981538014],
        [0.6460604764104, 0.2289674387677],
        [0.1205750620789, 0.2137274526848],
        [0.3340850613712, 0.2290642403242],
        [0.4901123135679, 0.6277975316475],
    ]
)


@dataclasses.dataclass
class ShapePredictor:
    initial: np.ndarray  # (P, 2) mean shape in the unit square
    splits: list  # per level: (trees, nodes, 3) internal nodes (idx1, idx2, thresh), breadth first
    leaves: list  # per level: (trees, leaves, P, 2)
    anchors: list  # per level: (F,) landmark each feature pixel is anchored to
    deltas: list  # per level: (F, 2) offset from the anchor, in mean-shape units


def _matrix(r: dlib_format.Reader) -> np.ndarray:
    rows, cols = -r.int(), -r.int()  # dlib writes negative sizes in its current matrix format
    if rows < 0 or cols < 0 or rows * cols > 10**6:
        r.fail("bad matrix")
    return np.array([r.float() for _ in range(rows * cols)], np.float32).reshape(rows, cols)


def read_shape_predictor(path: Path) -> ShapePredictor:
    """Parse dlib's shape_predictor file (version 1)."""
    path = Path(path)
    r = dlib_format.Reader(path.read_bytes(), str(path))
    if r.int() != 1:
        r.fail("not a shape predictor")
    initial = _matrix(r).reshape(-1, 2)
    splits, leaves = [], []
    for _ in range(r.int()):
        level_splits, level_leaves = [], []
        for _ in range(r.int()):
            nodes = [(r.int(), r.int(), r.float()) for _ in range(r.int())]
            level_splits.append(np.array(nodes, np.float64).reshape(-1, 3))
            level_leaves.append(np.stack([_matrix(r).reshape(-1, 2) for _ in range(r.int())]))
        splits.append(np.stack(level_splits))
        leaves.append(np.stack(level_leaves))
    anchors = [np.array([r.int() for _ in range(r.int())]) for _ in range(r.int())]
    deltas = [
        np.array([[r.float(), r.float()] for _ in range(r.int())], np.float32).reshape(-1, 2) for _ in range(r.int())
    ]
    if len(anchors) != len(splits) or r.pos != len(r.data):
        r.fail("inconsistent shape predictor")
    return ShapePredictor(initial, splits, leaves, anchors, deltas)


@functools.cache
def shape_predictor() -> ShapePredictor:
    """dlib's installed 5-point model, parsed once (seconds of pure Python) and kept as an .npz in the cache."""
    cached = cache_dir() / "models" / "faces_shape_predictor_5.npz"
    return load_cached(dlib_format.installed(dlib_format.LANDMARKS), cached)


def load_cached(path: Path, cache: Path) -> ShapePredictor:
    """`read_shape_predictor(path)`, kept as an .npz beside the other cached models (loads in ms)."""
    key = f"{Path(path).stat().st_size}"
    if cache.exists():
        with np.load(cache) as data:
            if str(data["key"]) == key:
                levels = int(data["levels"])
                return ShapePredictor(
                    data["initial"],
                    *(
                        [data[f"{field}{i}"] for i in range(levels)]
                        for field in ("splits", "leaves", "anchors", "deltas")
                    ),
                )
    model = read_shape_predictor(path)
    arrays = {
        f"{field}{i}": a
        for field in ("splits", "leaves", "anchors", "deltas")
        for i, a in enumerate(getattr(model, field))
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_name(f".{cache.name}.part.npz")
    np.savez(tmp, key=key, levels=len(model.splits), initial=model.initial, **arrays)
    tmp.replace(cache)
    return model


def similarity(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares (A, t) with target ~ source @ A.T + t, A = scale * rotation (Umeyama 1991)."""
    mu_s, mu_t = source.mean(0), target.mean(0)
    s, t = source - mu_s, target - mu_t
    var_s = (s**2).sum(1).mean()
    cov = t.T @ s / len(source)
    u, d, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(cov) < 0 or (np.linalg.det(cov) == 0 and np.linalg.det(u) * np.linalg.det(vt) < 0):
        sign[1, 1] = -1
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(d) @ sign) / var_s if var_s else 1.0
    return scale * rotation, mu_t - scale * rotation @ mu_s


def grey(image: np.ndarray) -> np.ndarray:
    """dlib's intensity of an RGB pixel: the integer mean of the three channels."""
    if image.ndim == 2:
        return image.astype(np.float32)
    return (image.astype(np.uint16).sum(-1) // 3).astype(np.float32)


def predict(model: ShapePredictor, image: np.ndarray, box) -> np.ndarray:
    """Landmarks (P, 2) as integer pixels for `box` = (left, top, right, bottom), dlib-inclusive."""
    left, top, right, bottom = (float(v) for v in box)
    origin, extent = np.array([left, top]), np.array([right - left, bottom - top])
    intensity = grey(image)
    height, width = intensity.shape
    shape = model.initial.astype(np.float32).copy()
    for level, trees in enumerate(model.splits):
        linear, _ = similarity(model.initial.astype(np.float64), shape.astype(np.float64))
        points = model.deltas[level] @ linear.astype(np.float32).T + shape[model.anchors[level]]
        pixels = np.floor(points * extent + origin + 0.5).astype(np.int64)  # dlib rounds to the nearest pixel
        inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < width) & (pixels[:, 1] >= 0) & (pixels[:, 1] < height)
        values = np.zeros(len(pixels), np.float32)
        values[inside] = intensity[pixels[inside, 1], pixels[inside, 0]]
        for tree, nodes in enumerate(trees):
            node = 0
            while node < len(nodes):
                a, b, thresh = nodes[node]
                node = 2 * node + 1 if values[int(a)] - values[int(b)] > np.float32(thresh) else 2 * node + 2
            shape = shape + model.leaves[level][tree, node - len(nodes)]
    return np.floor(shape * extent + origin + 0.5).astype(np.int64)


# ---------------------------------------------------------------- alignment


def chip_square(landmarks: np.ndarray, size: int = CHIP_SIDE, padding: float = 0.25):
    """dlib's get_face_chip_details: the chip's (centre, side, angle) in the image."""
    if landmarks.shape != (5, 2):
        raise BadInput(f"need 5 landmarks, got {landmarks.shape}")
    template = (padding + CHIP_TEMPLATE) / (2 * padding + 1) * size
    linear, offset = similarity(template, landmarks.astype(np.float64))
    centre = linear @ np.array([size / 2.0, size / 2.0]) + offset
    return centre, size * np.hypot(*linear[:, 0]), np.arctan2(linear[1, 0], linear[0, 0])


def _corners(centre, side, angle) -> np.ndarray:
    """tl, tr, bl, br of the rotated square; dlib's centered_drect spans side - 1."""
    half = (side - 1) / 2.0
    c, s = np.cos(angle), np.sin(angle)
    square = np.array([[-half, -half], [half, -half], [-half, half], [half, half]])
    return square @ np.array([[c, -s], [s, c]]).T + centre


def _affine(source: np.ndarray, target: np.ndarray):
    """The affine map (A, t) sending three source points onto three target points."""
    solution = np.linalg.solve(np.hstack([source, np.ones((3, 1))]), target)
    return solution[:2].T, solution[2]


def pyramid_down(image: np.ndarray) -> np.ndarray:
    """dlib's pyramid_down<2>: 5-tap [1 4 6 4 1] filter both ways, every other pixel, no borders."""
    x = image.astype(np.int32)
    cols = 2 * np.arange((x.shape[1] - 3) // 2)
    t = x[:, cols] + 4 * x[:, cols + 1] + 6 * x[:, cols + 2] + 4 * x[:, cols + 3] + x[:, cols + 4]
    rows = np.arange(2, x.shape[0] - 2, 2)
    down = (t[rows - 2] + 4 * t[rows - 1] + 6 * t[rows] + 4 * t[rows + 1] + t[rows + 2]) // 256
    return down[: (x.shape[0] - 3) // 2].astype(np.uint8)


def _point_down(points: np.ndarray) -> np.ndarray:
    return points / 2.0 - np.array([1.25, 0.75])  # dlib's own mapping for pyramid_down<2>


def bilinear(image: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Sample (..., 2) points bilinearly; points whose 2x2 patch leaves the image are black."""
    height, width = image.shape[:2]
    x0, y0 = np.floor(points[..., 0]).astype(np.int64), np.floor(points[..., 1]).astype(np.int64)
    fx, fy = (points[..., 0] - x0)[..., None], (points[..., 1] - y0)[..., None]
    inside = (x0 >= 0) & (y0 >= 0) & (x0 + 1 < width) & (y0 + 1 < height)
    xa, ya = np.clip(x0, 0, max(width - 2, 0)), np.clip(y0, 0, max(height - 2, 0))
    img = image.astype(np.float64)
    top = img[ya, xa] * (1 - fx) + img[ya, xa + 1] * fx
    bottom = img[ya + 1, xa] * (1 - fx) + img[ya + 1, xa + 1] * fx
    value = top * (1 - fy) + bottom * fy
    value[~inside] = 0
    return np.clip(value, 0, 255).astype(np.uint8)  # dlib assigns doubles to uint8 by truncation


def extract_chip(image: np.ndarray, landmarks: np.ndarray, size: int = CHIP_SIDE, padding: float = 0.25) -> np.ndarray:
    """The aligned (size, size, 3) uint8 RGB chip the embedding network expects (extract_image_chip)."""
    centre, side, angle = chip_square(landmarks, size, padding)
    corners = _corners(centre, side, angle)
    depth, extent, grow = 0, side - 1, 2.0
    # dlib halves the source while the square, halved once more, still has more pixels than the chip.
    while (extent / 2.0) ** 2 > size * size:
        extent, depth, grow = extent / 2.0, depth + 1, grow * 2 + 2
    if depth:
        height, width = image.shape[:2]
        low = np.floor(np.maximum(corners.min(0) - grow, 0) + 0.5).astype(int)
        high = np.floor(np.minimum(corners.max(0) + grow, [width - 1, height - 1]) + 0.5).astype(int)
        image = image[low[1] : high[1] + 1, low[0] : high[0] + 1]
        corners = corners - low
        for _ in range(depth):
            image, corners = pyramid_down(image), _point_down(corners)
    chip_corners = np.array([[0, 0], [size - 1, 0], [0, size - 1]], np.float64)
    linear, offset = _affine(chip_corners, corners[:3])
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    return bilinear(image, np.stack([xs, ys], -1) @ linear.T + offset)
