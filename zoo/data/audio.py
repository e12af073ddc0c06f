"""The audio front end: read any audio file, resample, trim silence, log-mel features; and the
spoken-digit sources (real recordings and synthetic voices) the speech app trains and measures on.

Reading: soundfile (libsndfile: wav, flac, ogg, mp3 and more) first, librosa's other back ends
second; several channels are averaged, any sample rate is resampled (soxr). What cannot be used
is one `BadInput` line: not audio, empty, silent (peak below -60 dBFS), longer than the caller's
limit. No Keras here: the music app and the tests use it too. `melody` transcribes a sung or
played tune into (pitch, seconds) notes with pYIN.

Spoken digits, as `Clip`s at `SAMPLE_RATE`:
- FSDD (Jackson et al., CC BY-SA 4.0): `{digit}_{speaker}_{index}.wav`, four speakers in
  `../shared/data/fsdd/` beside the repository, or the catalog's upstream download (`fsdd`);
- Debian's asterisk-core-sounds-en-wav (CC-BY-SA-3.0): one female speaker's 0-9 and "oh";
- synthetic voices: espeak-ng (English accents x voice variants x rate x pitch), flite's voices and
  festival's, generated once and cached in `$ZOO_CACHE/speech/`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from zoo.data.download import cache_dir
from zoo.errors import BadInput
from zoo.files import atomic_output, check_input_file

SAMPLE_RATE = 8000  # telephone band: FSDD and the asterisk prompts are recorded at 8 kHz
SILENT_PEAK = 1e-3  # -60 dBFS: below this, a recording holds nothing to hear
MAX_FILE_SECONDS = 60.0  # longer files are refused before they are decoded
FRAME_HOP = 80  # 10 ms at 8 kHz
FFT_SIZE = 256  # 32 ms
MELS = 40
TOP_DB = 80.0  # log-mel floor below the clip's loudest bin
TRIM_DB = 30.0  # what counts as silence at the ends, below the clip's peak

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
FSDD_SPEAKERS = ("jackson", "nicolas", "yweweler", "george")  # the four in ../shared; upstream has six
ASTERISK_DIGITS = Path("/usr/share/asterisk/sounds/en/digits")
APT_HINT = "sudo apt-get install {}"


# ------------------------------------------------------------------ reading


def read_audio(source, sample_rate: int = SAMPLE_RATE, max_seconds: float = MAX_FILE_SECONDS) -> np.ndarray:
    """Mono float32 samples at `sample_rate` from a file path, or from `(rate, samples)`.

    Any channel count and rate are accepted (averaged, resampled); an unreadable, empty or
    silent recording, or one longer than `max_seconds`, is a one-line BadInput.
    """
    if isinstance(source, tuple) and len(source) == 2:
        rate, samples = source
        name = "<audio>"
        samples = np.asarray(samples)
        if samples.dtype.kind == "i":
            samples = samples / float(np.iinfo(samples.dtype).max)
        samples = samples.astype(np.float32)
        if samples.ndim == 2:  # (samples, channels), as soundfile and Gradio give it
            samples = samples.mean(axis=1)
        if samples.size and samples.size / rate > max_seconds:
            raise BadInput(f"{name}: {samples.size / rate:.1f} s long; at most {max_seconds:g} s")
    else:
        name = str(source)
        samples, rate = _decode(check_input_file(Path(source)), max_seconds)
    if samples.size == 0:
        raise BadInput(f"{name}: empty recording (no samples)")
    if not np.all(np.isfinite(samples)):
        raise BadInput(f"{name}: samples are not finite numbers")
    peak = float(np.max(np.abs(samples)))
    if peak < SILENT_PEAK:
        level = f"{20 * np.log10(peak):.0f} dBFS" if peak > 0 else "all zero"
        raise BadInput(f"{name}: silent recording (peak {level}; needs at least {20 * np.log10(SILENT_PEAK):.0f} dBFS)")
    return resample(samples, int(rate), sample_rate)


def _decode(path: Path, max_seconds: float) -> tuple[np.ndarray, int]:
    """(mono float32 samples, rate) of an audio file: soundfile first, librosa's back ends second."""
    import soundfile

    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        info = None
    if info is not None:
        if info.frames and info.duration > max_seconds:
            raise BadInput(f"{path}: {info.duration:.1f} s long; at most {max_seconds:g} s")
        try:
            samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
            return samples.mean(axis=1), rate
        except (soundfile.LibsndfileError, RuntimeError):
            pass
    import warnings

    import librosa

    try:
        with warnings.catch_warnings():  # librosa warns before falling back to audioread
            warnings.simplefilter("ignore")
            samples, rate = librosa.load(str(path), sr=None, mono=True, duration=max_seconds + 1)
    except Exception:  # audioread's and soundfile's many error types all mean "not audio" here
        raise BadInput(f"{path}: not an audio file that soundfile or librosa can read (wav, flac, ogg, mp3)") from None
    if samples.size / rate > max_seconds:
        raise BadInput(f"{path}: longer than {max_seconds:g} s")
    return samples.astype(np.float32), int(rate)


def resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return samples.astype(np.float32)
    import librosa

    return librosa.resample(samples.astype(np.float32), orig_sr=rate, target_sr=target, res_type="soxr_hq")


def trim(samples: np.ndarray, top_db: float = TRIM_DB) -> np.ndarray:
    """The samples between the first and last frame within `top_db` of the loudest."""
    import librosa

    trimmed, _ = librosa.effects.trim(samples, top_db=top_db, frame_length=FFT_SIZE, hop_length=FRAME_HOP // 2)
    return trimmed


def write_wav(path: Path, samples: np.ndarray, sample_rate: int, force: bool = False) -> Path:
    """16-bit PCM WAV, written atomically."""
    import soundfile

    with atomic_output(Path(path), force) as tmp:
        soundfile.write(str(tmp), np.clip(samples, -1, 1), sample_rate, subtype="PCM_16", format="WAV")
    return Path(path)


# ------------------------------------------------------------------ features


def power_spectrogram(samples: np.ndarray) -> np.ndarray:
    """|STFT|^2, (frequency bins, frames): 32 ms Hann windows every 10 ms."""
    import librosa

    return np.abs(librosa.stft(samples, n_fft=FFT_SIZE, hop_length=FRAME_HOP, window="hann")) ** 2


_MEL_BANK: dict[int, np.ndarray] = {}


def mel_bank(sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    if sample_rate not in _MEL_BANK:
        import librosa

        _MEL_BANK[sample_rate] = librosa.filters.mel(
            sr=sample_rate, n_fft=FFT_SIZE, n_mels=MELS, fmin=20, fmax=sample_rate / 2
        )
    return _MEL_BANK[sample_rate]


def log_mel(samples: np.ndarray, warp: float = 1.0) -> np.ndarray:
    """(frames, MELS) float32 log-mel energies in dB below the clip's loudest bin, floored at -TOP_DB.

    `warp` (training only) stretches the frequency axis: formants and pitch move by that factor, as
    in vocal tract length perturbation (Jaitly & Hinton, 2013).
    """
    power = power_spectrogram(samples)
    if warp != 1.0:
        bins = np.arange(power.shape[0], dtype=np.float32)
        power = np.stack([np.interp(bins / warp, bins, frame, right=frame[-1]) for frame in power.T], axis=1)
    mel = mel_bank() @ power
    db = 10.0 * np.log10(np.maximum(mel, 1e-10))
    return np.maximum(db - db.max(), -TOP_DB).T.astype(np.float32)


# ------------------------------------------------------------------ spoken digits


@dataclasses.dataclass(frozen=True)
class Clip:
    samples: np.ndarray  # float32 at SAMPLE_RATE
    digit: int
    speaker: str  # "jackson", "asterisk", "espeak-ng:en-us+f3:150:50", ...
    index: int = 0

    @property
    def name(self) -> str:
        return f"{self.digit}_{self.speaker}_{self.index}"


def fsdd_folder() -> Path:
    """FSDD's recordings: the four speakers beside the repository, else the catalog's download."""
    beside = Path(__file__).resolve().parents[3] / "shared" / "data" / "fsdd" / "recordings"
    if beside.is_dir():
        return beside
    from zoo.data import catalog

    return Path(catalog.fetch("fsdd")) / "free-spoken-digit-dataset-1.0.10" / "recordings"


def folder_clips(folder: Path, speakers: tuple[str, ...] | None = None) -> list[Clip]:
    """Every `{digit}_{speaker}_{index}.wav` in `folder` (FSDD's layout), of `speakers` if given."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"{folder}: no such folder of {{digit}}_{{speaker}}_{{index}}.wav recordings")
    clips = []
    for path in sorted(folder.glob("*.wav")):
        parts = path.stem.split("_")
        if len(parts) != 3 or not parts[0].isdigit() or not parts[2].isdigit() or int(parts[0]) > 9:
            continue
        if speakers is None or parts[1] in speakers:
            clips.append(Clip(read_audio(path), int(parts[0]), parts[1], int(parts[2])))
    if not clips:
        raise BadInput(
            f"{folder}: no {{digit}}_{{speaker}}_{{index}}.wav recordings"
            + (f" of {', '.join(speakers)}" if speakers else "")
        )
    return clips


def asterisk_clips() -> list[Clip]:
    """Debian's asterisk female speaker: 0-9 and "oh" (as 0), trimmed of their leading silence."""
    if not ASTERISK_DIGITS.is_dir():
        raise BadInput(f"{ASTERISK_DIGITS}: not installed; {APT_HINT.format('asterisk-core-sounds-en-wav')}")
    named = [(str(d), d) for d in range(10)] + [("oh", 0)]
    return [
        Clip(read_audio(ASTERISK_DIGITS / f"{stem}.wav"), digit, "asterisk", index)
        for index, (stem, digit) in enumerate(named)
    ]


# ------------------------------------------------------------------ synthetic voices

ESPEAK_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-029",
    "en-us-nyc",
)
ESPEAK_VARIANTS = (
    "m1",
    "m2",
    "m3",
    "m4",
    "m5",
    "m6",
    "m7",
    "f1",
    "f2",
    "f3",
    "f4",
    "f5",
    "klatt",
    "klatt2",
    "klatt3",
    "Andy",
    "Denis",
    "Gene",
    "Jacky",
    "Tweaky",
    "anika",
    "aunty",
    "belinda",
    "david",
    "edward",
    "grandma",
    "grandpa",
    "iven",
    "john",
    "linda",
    "max",
    "michel",
    "paul",
    "robert",
    "shelby",
    "steph",
    "travis",
    "victor",
)
FLITE_VOICES = ("kal", "kal16", "awb", "rms", "slt")
FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")


def espeak(word: str, voice: str = "en-us", rate: int = 150, pitch: int = 50) -> np.ndarray:
    """espeak-ng saying `word`, at SAMPLE_RATE."""
    return _synthesise(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "-w", "{out}", word], "espeak-ng")


def _synthesise(command: list[str], package: str, text: str | None = None) -> np.ndarray:
    if shutil.which(command[0]) is None:
        raise BadInput(f"{command[0]}: not installed; {APT_HINT.format(package)}")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "voice.wav"
        done = subprocess.run(
            [part.replace("{out}", str(out)) for part in command],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if done.returncode != 0 or not out.exists() or out.stat().st_size == 0:
            raise BadInput(f"{command[0]} failed: {(done.stderr or 'no output').strip().splitlines()[-1][:160]}")
        return read_audio(out)


def voice_settings(count: int, seed: int = 0) -> list[tuple[str, ...]]:
    """`count` espeak-ng settings (accent+variant, rate, pitch), then every flite voice at three
    speaking rates and every festival voice, those installed."""
    rng = np.random.default_rng(seed)
    settings = [
        (
            "espeak-ng",
            f"{rng.choice(ESPEAK_ACCENTS)}+{rng.choice(ESPEAK_VARIANTS)}",
            str(int(rng.integers(110, 200))),
            str(int(rng.integers(20, 80))),
        )
        for _ in range(count)
    ]
    if shutil.which("flite"):
        settings += [("flite", voice, stretch) for voice in FLITE_VOICES for stretch in ("0.8", "1.0", "1.25")]
    if shutil.which("text2wave"):
        installed = [v for v in FESTIVAL_VOICES if any(Path("/usr/share/festival/voices").glob(f"*/{v}"))]
        settings += [("festival", voice, "1.0") for voice in installed]  # slow to start: one rate each
    return settings


def say(setting: tuple[str, ...], word: str) -> np.ndarray:
    """`word` spoken by one synthetic voice setting (a `voice_settings` entry; a Clip's speaker split at ":")."""
    engine, voice, *rest = setting
    if engine == "espeak-ng":
        return espeak(word, voice, int(rest[0]), int(rest[1]))
    if engine == "flite":
        return _synthesise(
            ["flite", "-voice", voice, "--setf", f"duration_stretch={rest[0]}", "-t", word, "-o", "{out}"], "flite"
        )
    return _synthesise(
        [
            "text2wave",
            "-eval",
            f"(voice_{voice})",
            "-eval",
            f"(Parameter.set 'Duration_Stretch {rest[0]})",
            "-o",
            "{out}",
        ],
        "festival",
        text=word,
    )


def synthetic_clips(espeak_voices: int = 120, seed: int = 0) -> list[Clip]:
    """Every digit (and "oh" for 0) in `espeak_voices` espeak-ng settings and every flite and
    festival voice installed: made once (a minute on two cores), then read from the cache."""
    settings = voice_settings(espeak_voices, seed)
    words = [(word, digit) for digit, word in enumerate(DIGIT_WORDS)] + [("oh", 0)]
    jobs = [(s, w, d) for s in settings for w, d in words]
    sounds = _spoken("synthetic", (settings, words, SAMPLE_RATE), [(s, w) for s, w, _ in jobs])
    return [Clip(sound, d, ":".join(s), i) for i, (sound, (s, _, d)) in enumerate(zip(sounds, jobs))]


def spoken_strings(espeak_voices: int = 120, seed: int = 0) -> list[tuple[np.ndarray, str, str]]:
    """(samples, digits, voice) for one string of each length 3-10 per synthetic voice, spoken whole
    ("two nine oh four"), so the words run into each other as in fluent speech: what strings joined
    from single words lack. 0 is "zero" or "oh" at random. Made once, then read from the cache."""
    rng = np.random.default_rng(seed)
    jobs = []
    for setting in voice_settings(espeak_voices, seed):
        for length in range(3, 11):
            digits = "".join(str(d) for d in rng.integers(0, 10, length))
            text = " ".join("oh" if d == "0" and rng.random() < 0.5 else DIGIT_WORDS[int(d)] for d in digits)
            jobs.append((setting, text, digits))
    said = [(setting, text) for setting, text, _ in jobs]
    sounds = _spoken("strings", (said, SAMPLE_RATE), said)
    return [(sound, digits, ":".join(setting)) for sound, (setting, _, digits) in zip(sounds, jobs)]


def _spoken(name: str, key: object, jobs: list[tuple[tuple[str, ...], str]]) -> list[np.ndarray]:
    """Each (voice setting, text) spoken and trimmed, in threads: made once, then read from
    `$ZOO_CACHE/speech/NAME-<hash of key>.npz`."""
    cached = cache_dir() / "speech" / f"{name}-{hashlib.sha256(repr(key).encode()).hexdigest()[:16]}.npz"
    if not cached.exists():
        if shutil.which("espeak-ng") is None:
            raise BadInput(f"espeak-ng: not installed; {APT_HINT.format('espeak-ng')}")
        with ThreadPoolExecutor(4) as pool:
            sounds = list(pool.map(lambda job: trim(say(*job)), jobs))
        cached.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(cached, force=True) as tmp:
            np.savez(tmp, samples=np.concatenate(sounds), lengths=[len(v) for v in sounds])
    with np.load(cached) as stored:  # each item read once: an NpzFile decodes an array at every access
        samples, lengths = stored["samples"], stored["lengths"]
    starts = np.concatenate([[0], np.cumsum(lengths)])
    return [samples[a:b] for a, b in zip(starts[:-1], starts[1:])]


# ------------------------------------------------------------------ melody

MELODY_RATE = 22050
MELODY_HOP = 256  # 11.6 ms
# pYIN's Viterbi path calls some frames of plain noise voiced, each with a probability near 0.01;
# a played or sung note's frames are mostly above 0.5.
VOICED_PROBABILITY = 0.1


def melody(
    samples: np.ndarray, sample_rate: int = MELODY_RATE, shortest: float = 0.06
) -> list[tuple[int | None, float]]:
    """The notes of a sung, hummed or played melody as (MIDI pitch, or None for a rest, seconds).

    pYIN (Mauch & Dixon, ICASSP 2014) tracks the fundamental frequency frame by frame; each
    frame's pitch is rounded to a semitone and median-filtered, and runs of one pitch become
    notes; a run shorter than `shortest` seconds joins the note before it. For the music app's
    `--primer hum.wav` (the tokens are the music app's business).
    """
    import librosa
    from scipy.signal import medfilt

    f0, voiced, probability = librosa.pyin(
        samples,
        fmin=librosa.note_to_hz("C2"),
        fmax=librosa.note_to_hz("C7"),
        sr=sample_rate,
        frame_length=1024,
        hop_length=MELODY_HOP,
    )
    voiced &= probability >= VOICED_PROBABILITY
    pitches = np.where(voiced & np.isfinite(f0), np.round(librosa.hz_to_midi(np.nan_to_num(f0, nan=1.0))), -1)
    pitches = medfilt(pitches, 5)
    frame = MELODY_HOP / sample_rate
    runs = _merge_equal([(None if p < 0 else int(p), frame) for p in pitches])
    kept: list[tuple[int | None, float]] = []
    for index, (value, seconds) in enumerate(runs):  # a blip's time goes to the note before it
        if seconds >= shortest or not (kept or index + 1 < len(runs)):
            kept.append((value, seconds))
        elif kept:
            kept[-1] = (kept[-1][0], kept[-1][1] + seconds)
        else:
            runs[index + 1] = (runs[index + 1][0], runs[index + 1][1] + seconds)
    merged = _merge_equal(kept)
    while merged and merged[0][0] is None:  # silence before and after is not part of the tune
        merged.pop(0)
    while merged and merged[-1][0] is None:
        merged.pop()
    return [(pitch, round(seconds, 3)) for pitch, seconds in merged]


def _merge_equal(runs: list[tuple[int | None, float]]) -> list[tuple[int | None, float]]:
    merged: list[tuple[int | None, float]] = []
    for value, seconds in runs:
        if merged and merged[-1][0] == value:
            merged[-1] = (value, merged[-1][1] + seconds)
        else:
            merged.append((value, seconds))
    return merged
