"""The one catalog of datasets: name, source, sha256, license, size.

Pure data, so `zoo data list` is instant. `fetch` uses the offline copy when
one is installed (a Debian package, a file inside a wheel), else the
hash-checked download into the cache. Apps add their datasets here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from zoo.data.download import cache_dir, download, extract
from zoo.errors import BadInput


@dataclass(frozen=True)
class Dataset:
    name: str
    summary: str
    license: str
    size: str
    url: str | None = None  # None: offline-only (ships in a package) or generated
    sha256: str | None = None  # None with a url: unpinned, recorded at first download
    offline: str | None = None  # where an installed copy lives, if any
    stand_in: str = ""  # what to use offline when the download can't happen
    archive: bool = False  # unpack after download
    files: tuple[tuple[str, str], ...] = ()  # several files under a folder `url`: (name, sha256) each

    @property
    def fname(self) -> str:
        return self.url.rsplit("/", 1)[-1] if self.url and not self.files else self.name


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset(
            "sample-photos",
            "16 real photos shipped in scikit-image, scikit-learn and matplotlib wheels; 12 train / 4 held out",
            "BSD/CC0/PD (per image)",
            "8 MB",
            offline="python wheels (skimage.data, sklearn.datasets, matplotlib sample_data)",
        ),
        Dataset(
            "div2k-train",
            "DIV2K: 800 2K-resolution training photos (NTIRE 2017)",
            "research only",
            "3.5 GB",
            url="https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip",
            sha256="9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335",
            stand_in="sample-photos",
            archive=True,
        ),
        Dataset(
            "div2k-valid",
            "DIV2K: 100 2K-resolution validation photos",
            "research only",
            "449 MB",
            url="https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip",
            sha256="20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc",
            stand_in="sample-photos",
            archive=True,
        ),
        Dataset(
            "bsds500",
            "Berkeley Segmentation Dataset: 500 photos, 481x321 (200 train / 100 val / 200 test)",
            "research only",
            "70 MB",
            url="http://www.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/BSR/BSR_bsds500.tgz",
            stand_in="sample-photos",
            archive=True,
        ),
        Dataset(
            "fashion-mnist",
            "Fashion-MNIST: 60,000 + 10,000 greyscale 28x28 garments, 10 classes (Zalando)",
            "MIT",
            "30 MB",
            url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            files=(
                ("train-images-idx3-ubyte.gz", "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
                ("train-labels-idx1-ubyte.gz", "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
                ("t10k-images-idx3-ubyte.gz", "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
                ("t10k-labels-idx1-ubyte.gz", "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
            ),
            offline="/usr/share/datasets/fashion-mnist",
        ),
        Dataset(
            "cifar10",
            "CIFAR-10: 50,000 + 10,000 colour 32x32 photos, 10 classes (binary version)",
            "research (no license stated)",
            "163 MB",
            url="https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            sha256="c4a38c50a1bc5f3a1c5537f2155ab9d68f9f25eb1ed8d9ddda3db29a59bca1dd",
            stand_in="fashion-mnist",
            archive=True,
        ),
        Dataset(
            "bach-chorales",
            "J. S. Bach's 371 four-part chorales (music21 corpus); each voice a melody",
            "BSD-3 (music21 corpus)",
            "3.4 MB",
            offline="music21 wheel (music21.corpus.chorales)",
        ),
        Dataset(
            "essen-folksongs",
            "Essen folksong collection: about 8,500 one-voice tunes in ABC (music21 corpus)",
            "BSD-3 (music21 corpus)",
            "2.6 MB",
            offline="music21 wheel (music21/corpus/essenFolksong)",
        ),
        Dataset(
            "nottingham-midi",
            "Nottingham folk tunes as MIDI (Boulanger-Lewandowski et al., ICML 2012 form)",
            "research only",
            "1 MB",
            url="http://www-etud.iro.umontreal.ca/~boulanni/Nottingham.zip",
            stand_in="essen-folksongs",
            archive=True,
        ),
        Dataset(
            "fsdd",
            "Free Spoken Digit Dataset: 3,000 spoken digits 0-9 by six speakers, 8 kHz WAV "
            "(Jackson et al.); four of them beside the repository, ../shared/data/fsdd",
            "CC BY-SA 4.0",
            "16 MB",
            url="https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.tar.gz",
            stand_in="synthetic-digits",
            archive=True,
        ),
        Dataset(
            "asterisk-digits",
            "Asterisk's English prompts: one female speaker's digits 0-9 and 'oh', 8 kHz WAV "
            "(Debian asterisk-core-sounds-en-wav)",
            "CC-BY-SA-3.0",
            "2 MB",
            offline="/usr/share/asterisk/sounds/en/digits",
        ),
        Dataset(
            "synthetic-digits",
            "Spoken digits from over a hundred synthetic voices: espeak-ng accents and variants, "
            "flite, festival (Debian packages), cached on first use",
            "generated",
            "on demand",
        ),
        Dataset(
            "caption-scenes",
            "Generated shapes scenes with 5 captions each; the 'unseen' split holds colour-shape "
            "pairs never seen in training",
            "MIT (generated)",
            "on demand",
        ),
        Dataset(
            "karpathy-splits",
            "Karpathy's train/val/test caption splits for Flickr8k, Flickr30k and COCO",
            "BSD",
            "36 MB",
            url="https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip",
            stand_in="caption-scenes",
        ),
        Dataset(
            "flickr8k-images",
            "Flickr8k: 8,091 photos, 5 captions each (Hodosh et al., JAIR 2013)",
            "research only",
            "1.1 GB",
            url="https://github.com/jbrownlee/Datasets/releases/download/Flickr8k/Flickr8k_Dataset.zip",
            stand_in="caption-scenes",
            archive=True,
        ),
        Dataset(
            "coco-train2014",
            "COCO 2014 train images (captions from karpathy-splits)",
            "CC BY 4.0",
            "13 GB",
            url="http://images.cocodataset.org/zips/train2014.zip",
            stand_in="caption-scenes",
            archive=True,
        ),
        Dataset(
            "coco-val2014",
            "COCO 2014 val images (Karpathy's val, test and restval)",
            "CC BY 4.0",
            "6.2 GB",
            url="http://images.cocodataset.org/zips/val2014.zip",
            stand_in="caption-scenes",
            archive=True,
        ),
        Dataset(
            "face-photos",
            "Real face photos inside packages: face_recognition 1.3.0 sdist test images (Obama x5, "
            "Biden), matplotlib's Grace Hopper, scikit-image's astronaut; coffee, chelsea, rocket as face-free",
            "MIT (face_recognition) / BSD / PD (per image)",
            "4 MB",
            offline="pip download --no-deps --no-binary :all: face_recognition==1.3.0 (tar.gz, not installed); "
            "skimage.data; matplotlib sample_data",
        ),
        Dataset(
            "lfw",
            "Labeled Faces in the Wild: 13,233 photos of 5,749 people (Huang et al., 2007)",
            "research (no license stated)",
            "173 MB",
            url="http://vis-www.cs.umass.edu/lfw/lfw.tgz",
            stand_in="face-photos",
            archive=True,
        ),
        Dataset(
            "lfw-pairs",
            "LFW's View 2 verification protocol: 10 folds of 300 same + 300 different pairs",
            "research (no license stated)",
            "230 KB",
            url="http://vis-www.cs.umass.edu/lfw/pairs.txt",
            stand_in="face-photos",
        ),
        Dataset(
            "generated-identities",
            "Generated 'identities' (random smooth patterns under random pose, light and "
            "noise) for testing face-embedding training offline; not faces",
            "MIT (generated)",
            "on demand",
        ),
        Dataset(
            "ml-100k",
            "MovieLens 100K: 100,000 ratings (1-5) of 1,682 movies by 943 users, titles and genres; u1..u5 folds",
            "GroupLens: research use, no redistribution",
            "5 MB",
            url="https://files.grouplens.org/datasets/movielens/ml-100k.zip",
            archive=True,
            offline="RecBole wheel: recbole/dataset_example/ml-100k (pip install --no-deps recbole==1.2.1)",
        ),
        Dataset(
            "ml-1m",
            "MovieLens 1M: 1,000,209 ratings of 3,706 movies by 6,040 users (ratings.dat, '::')",
            "GroupLens: research use, no redistribution",
            "6 MB",
            url="https://files.grouplens.org/datasets/movielens/ml-1m.zip",
            stand_in="ml-100k",
            archive=True,
        ),
        Dataset(
            "ml-20m",
            "MovieLens 20M: 20,000,263 ratings of 26,744 movies by 138,493 users (ratings.csv)",
            "GroupLens: research use, no redistribution",
            "190 MB",
            url="https://files.grouplens.org/datasets/movielens/ml-20m.zip",
            stand_in="ml-100k",
            archive=True,
        ),
        Dataset(
            "ml-25m",
            "MovieLens 25M: 25,000,095 ratings of 62,423 movies by 162,541 users (ratings.csv)",
            "GroupLens: research use, no redistribution",
            "250 MB",
            url="https://files.grouplens.org/datasets/movielens/ml-25m.zip",
            stand_in="ml-100k",
            archive=True,
        ),
        Dataset(
            "ml-latest-small",
            "MovieLens latest-small: about 100,000 ratings (0.5-5) of 9,700 movies by 610 users "
            "(ratings.csv); changes over time",
            "GroupLens: research use, no redistribution",
            "1 MB",
            url="https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
            stand_in="ml-100k",
            archive=True,
        ),
        Dataset(
            "planted-ratings",
            "Generated ratings with planted taste clusters (four tastes, 300 users, 400 items) "
            "for fast recommender tests; not real users",
            "MIT (generated)",
            "on demand",
        ),
    ]
}


def get(name: str) -> Dataset:
    if name not in DATASETS:
        raise BadInput(f"unknown dataset {name!r}; datasets: {', '.join(DATASETS)}")
    return DATASETS[name]


def path(name: str) -> Path | str:
    """Where the dataset lives (or will, once fetched); nothing is downloaded."""
    dataset = get(name)
    if not dataset.url or _installed(dataset):
        return dataset.offline or "generated by the project on demand"
    return cache_dir() / "datasets" / dataset.fname


def _installed(dataset: Dataset) -> bool:
    """An offline copy that is a real path here (a Debian package), so the download can wait."""
    return bool(dataset.offline) and Path(dataset.offline).exists()


def fetch(name: str) -> Path | str:
    """Make the dataset available locally and return its path."""
    dataset = get(name)
    if not dataset.url or _installed(dataset):
        return path(name)
    if dataset.files:
        for fname, sha256 in dataset.files:
            download(dataset.url + fname, sha256, fname, f"datasets/{dataset.fname}", dataset.stand_in)
        return path(name)
    archive = download(dataset.url, dataset.sha256, dataset.fname, stand_in=dataset.stand_in)
    return extract(archive) if dataset.archive else archive


def describe(dataset: Dataset) -> dict:
    if dataset.offline:
        status = "offline"
    elif not dataset.url:
        status = "generated"
    else:
        status = "cached" if Path(path(dataset.name)).exists() else "download"
    pinned = dataset.sha256 or ("recorded at first download" if dataset.url else None)
    return {
        "name": dataset.name,
        "status": status,
        "size": dataset.size,
        "license": dataset.license,
        "summary": dataset.summary,
        "url": dataset.url,
        "sha256": pinned,
        "offline": dataset.offline,
        "stand_in": dataset.stand_in,
    }
