"""Explicit ratings (user, item, rating, optional timestamp) and item titles, from any common layout.

Layouts read (`--format`, or detected from the name and first line):

- `recbole`: RecBole's atomic `.inter` files, a header such as
  `user_id:token  item_id:token  rating:float  timestamp:float`, tab-separated;
- `udata`: MovieLens-100K's `u.data` (and its `u1.base` ... `u5.test` folds): user, item, rating,
  timestamp, tab-separated, no header;
- `dat`: MovieLens-1M's `ratings.dat`, `::`-separated, no header;
- `csv` / `tsv`: a header naming the columns (`userId,movieId,rating,timestamp` as in MovieLens
  20M/25M/latest-small, or `user`, `item`, `rating`, `timestamp` and common variants).

Item metadata (title, year, genres) comes from the file beside the ratings: `ml-100k.item`
(RecBole), `u.item`, `movies.dat` or `movies.csv`. MovieLens-100K ships inside the RecBole wheel on
PyPI (`pip install --no-deps recbole`); it is found with `importlib.util.find_spec`, never by
importing recbole (which needs torch). The GroupLens licence allows research use and forbids
redistribution: the files are read where the user has them and never copied.

Bad input is a one-line `BadInput` naming the file (and line): an empty file, a missing column, a
row with the wrong number of fields, a rating that is not a number. Duplicate (user, item) pairs
are a counted warning: the latest (by timestamp, else by position) is kept.
"""

from __future__ import annotations

import csv
import dataclasses
import importlib.util
import re
import warnings
from pathlib import Path

import numpy as np

from zoo.errors import BadInput
from zoo.files import check_input_file

FORMATS = ("auto", "recbole", "udata", "dat", "csv", "tsv")
COLUMN_NAMES = {
    "user": ("user", "user_id", "userid", "uid", "user id"),
    "item": ("item", "item_id", "itemid", "movie", "movie_id", "movieid", "iid", "item id"),
    "rating": ("rating", "ratings", "score", "stars"),
    "timestamp": ("timestamp", "time", "ts", "date", "unix_timestamp"),
}
HEADERLESS = {"udata": "\t", "dat": "::"}  # user, item, rating[, timestamp]


@dataclasses.dataclass
class Ratings:
    """Ratings as parallel arrays over dense indices, with the raw ids they stand for.

    users[u] is the raw id of user index u; user[k], item[k], rating[k], timestamp[k] is the k-th
    rating (timestamp -1 where the file has none).
    """

    users: list[str]
    items: list[str]
    user: np.ndarray  # (n,) int32
    item: np.ndarray  # (n,) int32
    rating: np.ndarray  # (n,) float32
    timestamp: np.ndarray  # (n,) int64
    source: str = ""
    warnings: list[str] = dataclasses.field(default_factory=list)

    def __len__(self) -> int:
        return len(self.rating)

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    def subset(self, mask: np.ndarray) -> Ratings:
        """The same users and items (indices unchanged), fewer ratings."""
        return dataclasses.replace(
            self,
            user=self.user[mask],
            item=self.item[mask],
            rating=self.rating[mask],
            timestamp=self.timestamp[mask],
            warnings=[],
        )


@dataclasses.dataclass(frozen=True)
class ItemInfo:
    title: str
    year: int | None
    genres: tuple[str, ...]


# ------------------------------------------------------------------ sources


def recbole_ml100k() -> Path | None:
    """The `ml-100k` folder inside an installed RecBole wheel, or None (found without importing recbole)."""
    spec = importlib.util.find_spec("recbole")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "dataset_example" / "ml-100k"
    return folder if (folder / "ml-100k.inter").exists() else None


def default_ratings_file() -> Path:
    """MovieLens-100K from the RecBole wheel: the offline default."""
    folder = recbole_ml100k()
    if folder is None:
        raise BadInput(
            "MovieLens-100K not found: `pip install --no-deps recbole==1.2.1` (it ships the files), "
            "or pass --data PATH to a ratings file (u.data, ratings.dat, ratings.csv, ...)"
        )
    return folder / "ml-100k.inter"


def ratings_file(data: Path | None) -> Path:
    """`--data` (a ratings file, or a MovieLens folder) -> the ratings file."""
    if data is None:
        return default_ratings_file()
    data = Path(data)
    if data.is_dir():
        for name in ("ml-100k.inter", "u.data", "ratings.dat", "ratings.csv"):
            if (data / name).exists():
                return data / name
        found = sorted(data.glob("*.inter")) or [
            p for name in ("u.data", "ratings.dat", "ratings.csv") for p in sorted(data.glob(f"*/{name}"))
        ]  # an unpacked zip
        if found:
            return found[0]
        raise BadInput(f"{data}: folder holds no ratings file (u.data, ratings.dat, ratings.csv or *.inter)")
    return check_input_file(data)


# ------------------------------------------------------------------ parsing


def detect_format(path: Path, first_line: str) -> str:
    name = path.name.lower()
    if name.endswith(".inter") or re.search(r"\w+:(token|float)\b", first_line):
        return "recbole"
    if "::" in first_line:
        return "dat"
    delimiter = "\t" if "\t" in first_line else ","
    # A header names columns: not one of its fields is a number.
    has_header = not any(re.fullmatch(r"\s*-?\d+(\.\d*)?\s*", f) for f in first_line.split(delimiter))
    if not has_header and delimiter == "\t":
        return "udata"
    if not has_header:
        raise BadInput(f"{path}: a comma-separated file needs a header naming user, item and rating columns")
    return "tsv" if delimiter == "\t" else "csv"


def _column_index(path: Path, header: list[str]) -> dict[str, int]:
    clean = [h.split(":")[0].strip().lower() for h in header]
    index = {}
    for role, names in COLUMN_NAMES.items():
        hits = [i for i, h in enumerate(clean) if h in names]
        if hits:
            index[role] = hits[0]
        elif role != "timestamp":
            raise BadInput(
                f"{path}: no {role} column in header {','.join(header)} (expected one of: {', '.join(names)})"
            )
    return index


def _rows(path: Path, fmt: str):
    """Yield (line number, fields) for data rows, and the column index first."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        if fmt in HEADERLESS:
            sep = HEADERLESS[fmt]
            yield {"user": 0, "item": 1, "rating": 2, "timestamp": 3}
            for number, line in enumerate(f, 1):
                if line.strip():
                    yield number, line.rstrip("\r\n").split(sep)
            return
        reader = csv.reader(f, delimiter="," if fmt == "csv" else "\t")
        header = next(reader, None)
        if not header:
            raise BadInput(f"{path}: empty file")
        yield _column_index(path, header)
        for fields in reader:
            if fields and any(x.strip() for x in fields):
                yield reader.line_num, fields


def _parse(path: Path, fmt: str):
    rows = _rows(path, fmt)
    columns = next(rows)
    need = max(columns[r] for r in ("user", "item", "rating")) + 1
    users, items, values, times = [], [], [], []
    for number, fields in rows:
        if len(fields) < need:  # extra fields are ignored, as NumPy's parser does with usecols
            raise BadInput(
                f"{path}:{number}: malformed row ({len(fields)} fields, expected at least {need}): {_show(fields)}"
            )
        try:
            value = float(fields[columns["rating"]])
        except ValueError:
            raise BadInput(f"{path}:{number}: rating {fields[columns['rating']]!r} is not a number") from None
        if not np.isfinite(value):
            raise BadInput(f"{path}:{number}: rating {fields[columns['rating']]!r} is not a finite number")
        stamp = fields[columns["timestamp"]] if "timestamp" in columns and len(fields) > columns["timestamp"] else ""
        try:
            times.append(int(float(stamp)) if stamp.strip() else -1)
        except ValueError:
            raise BadInput(f"{path}:{number}: timestamp {stamp!r} is not a number (Unix seconds)") from None
        users.append(fields[columns["user"]].strip())
        items.append(fields[columns["item"]].strip())
        values.append(value)
    return users, items, values, times


def _show(fields: list[str]) -> str:
    text = "|".join(fields)
    return text if len(text) < 60 else text[:57] + "..."


def _natural(ids) -> list[str]:
    """Ids sorted numerically where they are all integers, else as text."""
    ids = list(ids)
    return sorted(ids, key=int) if all(i.lstrip("-").isdigit() for i in ids) else sorted(ids)


def load_ratings(data: Path | None = None, fmt: str = "auto") -> Ratings:
    """Read a ratings file (or the offline MovieLens-100K) into dense-indexed arrays."""
    path = ratings_file(data)
    if fmt not in FORMATS:
        raise BadInput(f"--format {fmt}: choose one of {', '.join(FORMATS)}")
    with open(path, encoding="utf-8", errors="replace") as f:
        first = next((line for line in f if line.strip()), "")
    if not first:
        raise BadInput(f"{path}: empty file")
    fmt = detect_format(path, first) if fmt == "auto" else fmt
    if fmt == "recbole":
        fmt = "tsv"
    ratings = _parse_numeric(path, fmt)
    if ratings is None:  # ids that are not numbers, quoted fields, or a bad row: the careful path
        users, items, values, times = _parse(path, fmt)
        if not values:
            raise BadInput(f"{path}: no ratings (only a header)")
        user_ids, item_ids = _natural(set(users)), _natural(set(items))
        user_of = {u: i for i, u in enumerate(user_ids)}
        item_of = {m: i for i, m in enumerate(item_ids)}
        ratings = Ratings(
            user_ids,
            item_ids,
            np.array([user_of[u] for u in users], np.int32),
            np.array([item_of[m] for m in items], np.int32),
            np.array(values, np.float32),
            np.array(times, np.int64),
            source=str(path),
        )
    return _drop_duplicates(ratings)


def _parse_numeric(path: Path, fmt: str) -> Ratings | None:
    """NumPy's C parser for all-numeric files (every MovieLens layout): seconds for 20M rows, not minutes.

    Returns None, so the row-by-row parser can name the bad line, on anything it cannot read.
    """
    if fmt in HEADERLESS:
        columns, skip = {"user": 0, "item": 1, "rating": 2, "timestamp": 3}, 0
    else:
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            header = next(csv.reader(f, delimiter="," if fmt == "csv" else "\t"), None)
        if not header:
            return None
        columns, skip = _column_index(path, header), 1
    order = [r for r in ("user", "item", "rating", "timestamp") if r in columns]
    delimiter = {"udata": "\t", "dat": "\t", "csv": ",", "tsv": "\t"}[fmt]
    try:
        with open(path, encoding="utf-8", errors="replace") as f, warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "input contained no data": the careful parser says so in one line
            lines = (line.replace("::", "\t") for line in f) if fmt == "dat" else f
            table = np.loadtxt(
                lines,
                delimiter=delimiter,
                skiprows=skip,
                usecols=[columns[r] for r in order],
                dtype=np.float64,
                ndmin=2,
            )
    except (ValueError, IndexError):
        return None
    if not len(table) or not np.isfinite(table).all() or (table[:, :2] != np.round(table[:, :2])).any():
        return None
    user_ids, user = np.unique(table[:, 0].astype(np.int64), return_inverse=True)
    item_ids, item = np.unique(table[:, 1].astype(np.int64), return_inverse=True)
    stamps = table[:, 3].astype(np.int64) if len(order) == 4 else np.full(len(table), -1, np.int64)
    return Ratings(
        [str(u) for u in user_ids],
        [str(i) for i in item_ids],
        user.astype(np.int32),
        item.astype(np.int32),
        table[:, 2].astype(np.float32),
        stamps,
        source=str(path),
    )


def _drop_duplicates(ratings: Ratings) -> Ratings:
    """Keep one rating per (user, item): the latest by timestamp, ties by position in the file."""
    order = np.lexsort((np.arange(len(ratings)), ratings.timestamp, ratings.item, ratings.user))
    pair = ratings.user[order].astype(np.int64) * ratings.n_items + ratings.item[order]
    last = np.append(pair[1:] != pair[:-1], True)
    duplicates = int((~last).sum())
    if not duplicates:
        return ratings
    keep = np.sort(order[last])
    kept = ratings.subset(keep)
    kept.warnings = [f"{ratings.source}: {duplicates} duplicate (user, item) rating(s); kept the latest of each"]
    return kept


# ------------------------------------------------------------------- titles


def _year_from_title(title: str) -> tuple[str, int | None]:
    match = re.search(r"\s*\((\d{4})\)\s*$", title)
    return (title[: match.start()].strip(), int(match.group(1))) if match else (title.strip(), None)


def load_items(ratings_path: Path | str) -> dict[str, ItemInfo]:
    """Titles, years and genres by raw item id, from the metadata file beside the ratings ({} if none)."""
    folder = Path(ratings_path).parent
    readers = (
        ("ml-100k.item", _recbole_items),
        ("u.item", _uitem_items),
        ("movies.dat", _dat_items),
        ("movies.csv", _csv_items),
    )
    for name, reader in readers:
        if (folder / name).exists():
            return reader(folder / name)
    return {}


def _recbole_items(path: Path) -> dict[str, ItemInfo]:
    out = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        next(f)
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) >= 2:
                year = int(fields[2]) if len(fields) > 2 and fields[2].isdigit() else None
                out[fields[0]] = ItemInfo(fields[1], year, tuple(fields[3].split()) if len(fields) > 3 else ())
    return out


UITEM_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)


def _delimited_items(path: Path, separator: str, genres_of) -> dict[str, ItemInfo]:
    """Lines of `id SEP title (year) SEP ...`, MovieLens's Latin-1 layouts; `genres_of(fields)` reads the rest."""
    out = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            fields = line.rstrip("\n").split(separator)
            if len(fields) >= 2:
                title, year = _year_from_title(fields[1])
                out[fields[0]] = ItemInfo(title, year, genres_of(fields))
    return out


def _uitem_items(path: Path) -> dict[str, ItemInfo]:
    """ML-100K's u.item: genres as 19 flags from the sixth field."""
    return _delimited_items(
        path, "|", lambda fields: tuple(g for g, flag in zip(UITEM_GENRES, fields[5:]) if flag == "1")
    )


def _dat_items(path: Path) -> dict[str, ItemInfo]:
    """ML-1M's movies.dat: genres joined by '|' in the third field."""
    return _delimited_items(path, "::", lambda fields: tuple(fields[2].split("|")) if len(fields) > 2 else ())


def _csv_items(path: Path) -> dict[str, ItemInfo]:
    out = {}
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        for row in csv.DictReader(f):
            title, year = _year_from_title(row.get("title", ""))
            genres = row.get("genres", "")
            out[row.get("movieId", "")] = ItemInfo(
                title, year, tuple(g for g in genres.split("|") if g and g != "(no genres listed)")
            )
    return out


# ------------------------------------------------------------------ generated


def write_planted_ratings(
    path: Path, users: int = 300, items: int = 400, clusters: int = 4, per_user: int = 40, seed: int = 0
) -> Path:
    """Write a `u.data`-layout file of generated ratings with planted structure (not real people).

    Users and items each belong to one of `clusters` tastes. A user rates mostly (90%) items of
    their own taste, 4-5 stars plus an item-quality bias, and a few others, 1-2 stars, in random
    time order; so who-rated-what and how high carry a signal that popularity and per-user/item
    biases alone cannot explain.
    """
    rng = np.random.default_rng(seed)
    item_taste = np.arange(items) % clusters
    quality = rng.normal(0, 0.4, items)
    lines = []
    for user in range(users):
        taste = user % clusters
        own = rng.choice(np.flatnonzero(item_taste == taste), int(per_user * 0.9), replace=False)
        other = rng.choice(np.flatnonzero(item_taste != taste), per_user - len(own), replace=False)
        for step, item in enumerate(rng.permutation(np.concatenate([own, other]))):
            base = 4.5 if item_taste[item] == taste else 1.5
            stars = int(np.clip(np.rint(base + quality[item] + rng.normal(0, 0.3)), 1, 5))
            lines.append(f"{user + 1}\t{item + 1}\t{stars}\t{1_000_000 + 1000 * user + step}")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)
