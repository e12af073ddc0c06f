"""Image-caption pairs: generated scenes (offline), your own folder, Flickr8k and COCO.

Generated scenes (the offline default, made by this module, not real photos):
one or two flat shapes on a dark background, each with a shape (circle,
square, triangle, diamond), a colour (red, green, blue, yellow, purple) and a
size (small, large); two shapes share a row or a column, so their relation
(left of, right of, above, below) is never ambiguous. Every image has five
reference captions from a small grammar ("a small red circle to the left of a
large blue square", "there is a large blue square to the right of a small red
circle", ...), as Flickr8k has five human captions per image.

Compositional generalisation: four colour-shape pairs (`HELD_OUT`) never occur
in the `train`, `val` and `test` splits; every image of the `unseen` split
contains at least one of them. Each held-out colour and each held-out shape is
seen in training with other partners, so a model that recognises colour and
shape separately can name the new pairs; one that memorised pairs cannot.

Your own data: a folder of images plus `captions.txt`, one `image<TAB>caption`
per line (Flickr8k's `image.jpg#0<TAB>caption` works too), several lines per
image for several references.

Flickr8k and COCO: Karpathy's splits (`caption_datasets.zip`, Karpathy and
Fei-Fei, CVPR 2015) over the images, both through the catalog's hash-checked
downloads. Flickr8k: 6,000 train / 1,000 val / 1,000 test images; COCO: 113,287
train (with "restval") / 5,000 val / 5,000 test.

`Tokenizer` is the word vocabulary: lower-cased words, punctuation dropped,
saved as a text file with one token per line; decode(encode(text)) gives back
the normalised text.
"""

from __future__ import annotations

import json
import re
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from zoo.data import catalog
from zoo.data.images import image_files, read_image
from zoo.errors import BadInput
from zoo.files import check_input_file, write_text_atomic

# ------------------------------------------------------------ generated scenes

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (215, 40, 40),
    "green": (40, 175, 60),
    "blue": (50, 90, 235),
    "yellow": (230, 205, 40),
    "purple": (160, 60, 205),
}
SIZES = {"small": 0.5, "large": 0.9}  # fraction of a grid cell
HELD_OUT = (("red", "square"), ("green", "triangle"), ("blue", "diamond"), ("yellow", "circle"))
SCENE_SPLITS = {"train": 1, "val": 2, "test": 3, "unseen": 4}  # split -> seed stream, so splits never share images
GRID = 3  # objects sit in the cells of a 3x3 grid
SUPERSAMPLE = 4  # draw large, then downscale: antialiased edges


@dataclass(frozen=True)
class Shape:
    shape: str
    colour: str
    size: str
    row: int
    col: int

    @property
    def phrase(self) -> str:
        return f"{self.size} {self.colour} {self.shape}"


def _random_shape(rng: np.random.Generator, unseen: bool, cell: tuple[int, int]) -> Shape:
    """A shape of a seen colour-shape pair, or (with `unseen`) of a held-out one."""
    if unseen:
        colour, shape = HELD_OUT[rng.integers(len(HELD_OUT))]
    else:
        while (pair := (str(rng.choice(list(COLOURS))), str(rng.choice(SHAPES)))) in HELD_OUT:
            pass
        colour, shape = pair
    return Shape(shape, colour, str(rng.choice(list(SIZES))), *cell)


def random_scene(rng: np.random.Generator, unseen: bool = False) -> list[Shape]:
    """One shape (a fifth of scenes) or two in one row or column, the first left of or above the second."""
    cells = [(r, c) for r in range(GRID) for c in range(GRID)]
    if rng.random() < 0.2:
        return [_random_shape(rng, unseen, cells[rng.integers(len(cells))])]
    first = cells[rng.integers(len(cells))]
    partners = [c for c in cells if c != first and (c[0] == first[0] or c[1] == first[1])]
    second = partners[rng.integers(len(partners))]
    a, b = sorted([first, second])
    # In the unseen split one shape (either) is held out; the other may be anything.
    a_unseen = unseen and rng.random() < 0.5
    b_unseen = unseen and (not a_unseen or rng.random() < 0.25)
    return [_random_shape(rng, a_unseen, a), _random_shape(rng, b_unseen, b)]


def scene_captions(scene: list[Shape]) -> list[str]:
    """Five reference captions from the grammar."""
    if len(scene) == 1:
        x = scene[0].phrase
        return [f"a {x}", f"there is a {x}", f"a single {x}", f"there is one {x}", f"a {x} on its own"]
    a, b = scene
    relation, inverse = ("to the left of", "to the right of") if a.row == b.row else ("above", "below")
    return [
        f"a {a.phrase} {relation} a {b.phrase}",
        f"a {b.phrase} {inverse} a {a.phrase}",
        f"there is a {a.phrase} {relation} a {b.phrase}",
        f"there is a {b.phrase} {inverse} a {a.phrase}",
        f"a {a.phrase} is {relation} a {b.phrase}",
    ]


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "square":
        return [(cx - r, cy - r), (cx + r, cy - r), (cx + r, cy + r), (cx - r, cy + r)]
    if shape == "diamond":
        return [(cx, cy - r), (cx + r, cy), (cx, cy + r), (cx - r, cy)]
    return [(cx, cy - r), (cx + r, cy + 0.8 * r), (cx - r, cy + 0.8 * r)]  # triangle


def render_scene(scene: list[Shape], size: int, rng: np.random.Generator) -> np.ndarray:
    """Draw a scene as a size x size uint8 RGB image, with jittered positions and colours."""
    big = size * SUPERSAMPLE
    background = tuple(int(v) for v in rng.integers(15, 60, 3))
    canvas = Image.new("RGB", (big, big), background)
    draw = ImageDraw.Draw(canvas)
    cell = big / GRID
    for s in scene:
        r = SIZES[s.size] * cell / 2 * rng.uniform(0.9, 1.05)
        slack = cell / 2 - r
        cx = (s.col + 0.5) * cell + rng.uniform(-slack, slack) * 0.6
        cy = (s.row + 0.5) * cell + rng.uniform(-slack, slack) * 0.6
        fill = tuple(int(np.clip(v + rng.integers(-20, 21), 0, 255)) for v in COLOURS[s.colour])
        if s.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
        else:
            draw.polygon(_polygon(s.shape, cx, cy, r), fill=fill)
    return np.asarray(canvas.resize((size, size), Image.BOX))


def scenes(
    split: str = "train", count: int = 1000, image_size: int = 48, seed: int = 0
) -> tuple[np.ndarray, list[list[str]]]:
    """`count` generated images (N, size, size, 3) uint8 and their five references each.

    The same (split, count, size, seed) always gives the same data, and a larger
    `count` extends a smaller one.
    """
    if split not in SCENE_SPLITS:
        raise BadInput(f"scene split {split!r}: expected one of {', '.join(SCENE_SPLITS)}")
    images = np.empty((count, image_size, image_size, 3), np.uint8)
    references = []
    for i in range(count):
        rng = np.random.default_rng([seed, SCENE_SPLITS[split], i])
        scene = random_scene(rng, unseen=split == "unseen")
        images[i] = render_scene(scene, image_size, rng)
        references.append(scene_captions(scene))
    return images, references


# ------------------------------------------------------------------ tokenizer

SPECIAL_TOKENS = ("<pad>", "<unk>", "<start>", "<end>")
PAD, UNK, START, END = range(len(SPECIAL_TOKENS))


def normalize(text: str) -> str:
    """Lower-case words of letters, digits and apostrophes, single-spaced."""
    return " ".join(re.findall(r"[a-z0-9']+", text.lower()))


class Tokenizer:
    """Words <-> ids; ids 0-3 are <pad>, <unk>, <start>, <end>."""

    def __init__(self, words: list[str]):
        self.words = list(SPECIAL_TOKENS) + [w for w in words if w not in SPECIAL_TOKENS]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def fit(cls, captions: list[str], min_count: int = 1) -> Tokenizer:
        """Words seen at least `min_count` times, most frequent first (ties alphabetical)."""
        counts = Counter(w for c in captions for w in normalize(c).split())
        return cls([w for w, n in sorted(counts.items(), key=lambda x: (-x[1], x[0])) if n >= min_count])

    def encode(self, text: str, length: int | None = None) -> np.ndarray:
        """<start> words <end>, padded with <pad> to `length` (which must fit)."""
        ids = [START] + [self.index.get(w, UNK) for w in normalize(text).split()] + [END]
        if length is not None:
            if len(ids) > length:
                raise BadInput(f"caption {text[:40]!r}: {len(ids) - 2} words, over the limit of {length - 2}")
            ids += [PAD] * (length - len(ids))
        return np.array(ids, np.int32)

    def decode(self, ids) -> str:
        """Words up to the first <end>, skipping <pad> and <start>."""
        words = []
        for i in (int(i) for i in ids):
            if i == END:
                break
            if i not in (PAD, START):
                words.append(self.words[i] if 0 <= i < len(self.words) else "<unk>")
        return " ".join(words)

    def save(self, path: Path) -> Path:
        write_text_atomic(Path(path), "\n".join(self.words) + "\n")
        return Path(path)

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        """Read a vocabulary file, or raise BadInput saying what is wrong with it."""
        path = check_input_file(path)
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except (UnicodeDecodeError, OSError) as error:
            raise BadInput(f"{path}: not a readable tokenizer file ({type(error).__name__})") from None
        if tuple(lines[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise BadInput(f"{path}: not a tokenizer file (its first lines must be {' '.join(SPECIAL_TOKENS)})")
        words = lines[len(SPECIAL_TOKENS) :]
        bad = [w for w in words if not w or w != normalize(w) or w in SPECIAL_TOKENS]
        if bad or len(set(words)) != len(words):
            raise BadInput(
                f"{path}: not a tokenizer file (empty, repeated or unnormalised word "
                f"{(bad or [w for w, n in Counter(words).items() if n > 1])[0]!r})"
            )
        return cls(words)


# ------------------------------------------------------- photos and caption files


def square_image(rgb: np.ndarray, size: int) -> np.ndarray:
    """Centre-crop to a square and resize to size x size (what the encoders take)."""
    height, width = rgb.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    crop = Image.fromarray(rgb[top : top + side, left : left + side])
    return np.asarray(crop.resize((size, size), Image.BICUBIC if side < size else Image.BOX))


def read_caption_file(path: Path, max_words: int) -> dict[str, list[str]]:
    """`image<TAB>caption` lines -> {image name: [captions]}; bad lines are BadInput naming the line."""
    path = check_input_file(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise BadInput(f"{path}: not a UTF-8 text file") from None
    captions: dict[str, list[str]] = {}
    for number, line in enumerate(lines, 1):
        name, _, caption = line.partition("\t")
        name = name.split("#")[0].strip()  # Flickr8k writes image.jpg#0
        if not name or not normalize(caption):
            raise BadInput(f"{path}:{number}: empty caption line (expected image<TAB>caption)")
        words = len(normalize(caption).split())
        if words > max_words:
            raise BadInput(f"{path}:{number}: caption has {words} words, over the model's limit of {max_words}")
        captions.setdefault(name, []).append(caption.strip())
    if not captions:
        raise BadInput(f"{path}: no captions")
    return captions


def caption_folder(folder: Path, max_words: int, image_size: int) -> tuple[np.ndarray, list[list[str]]]:
    """A folder with images and captions.txt -> (images, references)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"{folder}: not a folder (expected images and captions.txt)")
    captions = read_caption_file(folder / "captions.txt", max_words)
    missing = [n for n in captions if not (folder / n).is_file()]
    if missing:
        raise BadInput(f"{folder / 'captions.txt'}: image {missing[0]!r} is not in {folder}")
    images = np.stack([square_image(read_image(folder / n), image_size) for n in captions])
    return images, list(captions.values())


# ------------------------------------------------------------- Flickr8k, COCO

KARPATHY_FILES = {"flickr8k": "dataset_flickr8k.json", "coco": "dataset_coco.json"}


def karpathy_split(
    dataset: str, split: str, image_size: int, limit: int | None = None
) -> tuple[np.ndarray, list[list[str]]]:
    """Images and references of one Karpathy split ("train" includes COCO's "restval")."""
    if dataset not in KARPATHY_FILES:
        raise BadInput(f"dataset {dataset!r}: expected one of {', '.join(KARPATHY_FILES)}")
    with zipfile.ZipFile(catalog.fetch("karpathy-splits")) as archive:
        member = next(n for n in archive.namelist() if n.endswith(KARPATHY_FILES[dataset]))
        entries = json.loads(archive.read(member))["images"]
    wanted = {"train": ("train", "restval")}.get(split, (split,))
    entries = [e for e in entries if e["split"] in wanted][:limit]
    if dataset == "flickr8k":
        roots = {"": Path(catalog.fetch("flickr8k-images"))}
    else:
        roots = {"train2014": Path(catalog.fetch("coco-train2014")), "val2014": Path(catalog.fetch("coco-val2014"))}
    found = {p.name: p for root in roots.values() for p in image_files(root)}
    images = np.stack([square_image(read_image(found[e["filename"]]), image_size) for e in entries])
    return images, [[s["raw"] for s in e["sentences"]] for e in entries]
