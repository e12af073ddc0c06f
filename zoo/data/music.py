"""Symbolic music as token sequences: music21's corpora, or any folder of MIDI files.

Sources (the first two are offline: they ship inside the music21 wheel):

- `chorales`: J. S. Bach's 371 four-part chorales (350 distinct settings:
  Riemenschneider's numbering lists 21 twice); each voice is one line;
- `folk`: the Essen folksong collection, about 8,500 one-voice tunes in ABC;
- a folder of MIDI files (`--data DIR`): each pitched part of each file is a line;
  Nottingham's MIDI collection downloads through the catalog.

A line is one melody: chords keep their top note, overlapping notes their
highest ("skyline"), ties are merged, drums are dropped. Its tokens are

    METER  (PITCH | REST, DURATION)*  END

where METER is the bar length in quarter notes (the time signature's, so
`--bars N` means something in 6/8 too), PITCH a MIDI note in the piano's range
and DURATION one of a fixed set of note values. Splitting a note into two
tokens keeps the vocabulary at 121 and lets pitch and rhythm be predicted
each from the other's context. A line starts on a barline (a pickup becomes a
leading rest), so `bar_positions` can tell where in the bar each token falls.

Splits are made by piece and more: pieces whose melodies open with the same
ten intervals form one group (Bach harmonised many hymn tunes more than once),
and a whole group lands in train, valid or test by a hash of its key. So a
held-out tune never appears in training, not even in another harmonisation.

music21 parses slowly (the chorales take a minute or two), so each corpus is
tokenised once and cached as JSON in the cache folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from zoo.data import audio
from zoo.data.download import cache_dir
from zoo.errors import BadInput
from zoo.files import atomic_output, check_input_file

CORPORA = ("chorales", "folk")
MIDI_SUFFIXES = (".mid", ".midi", ".kar")
# A recorded primer: its median note is a quarter note, within these tempi, moved near this note.
MIN_BPM, MAX_BPM = 40, 240
MELODY_CENTRE = 67  # G4
CACHE_VERSION = 3

# ------------------------------------------------------------------- tokens

PAD, END = 0, 1
BAR_LENGTHS = (1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0, 7.0, 8.0)  # quarter notes per bar
LOWEST, HIGHEST = 21, 108  # MIDI notes of the piano's range
DURATIONS = (0.125, 0.25, 1 / 3, 0.5, 2 / 3, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0)
METER0 = 2
PITCH0 = METER0 + len(BAR_LENGTHS)
REST = PITCH0 + HIGHEST - LOWEST + 1
DURATION0 = REST + 1
VOCAB_SIZE = DURATION0 + len(DURATIONS)

STEPS_PER_QUARTER = 24  # every duration above is a whole number of 24ths of a quarter note
POSITIONS = int(max(BAR_LENGTHS) * STEPS_PER_QUARTER)

Event = tuple  # (MIDI pitch or None for a rest, duration in quarter notes)


def snap(value: float, choices: tuple[float, ...]) -> float:
    """The nearest choice on a log scale (a dotted half is closer to 3 than to 2)."""
    return min(choices, key=lambda c: abs(np.log(value / c)))


def is_pitch(token):
    """Whether a token (or each of an array's) is a pitch or a rest."""
    return (token >= PITCH0) & (token <= REST)


def is_duration(token):
    return (token >= DURATION0) & (token < VOCAB_SIZE)


def encode(events: list[Event], bar_length: float) -> list[int]:
    tokens = [METER0 + BAR_LENGTHS.index(snap(bar_length, BAR_LENGTHS))]
    for pitch, duration in events:
        tokens.append(REST if pitch is None else PITCH0 + pitch - LOWEST)
        tokens.append(DURATION0 + DURATIONS.index(snap(duration, DURATIONS)))
    return tokens + [END]


def decode(tokens) -> tuple[float, list[Event]]:
    """(bar length, events) of a token sequence; stray tokens (a pitch with no duration) are skipped."""
    bar_length, events, pitch = 4.0, [], False
    for token in map(int, tokens):
        if METER0 <= token < PITCH0:
            bar_length = BAR_LENGTHS[token - METER0]
        elif is_pitch(token):
            pitch = None if token == REST else token - PITCH0 + LOWEST
        elif is_duration(token) and pitch is not False:
            events.append((pitch, DURATIONS[token - DURATION0]))
            pitch = False
    return bar_length, events


def bar_positions(tokens) -> np.ndarray:
    """Where in the bar the music stands after each token, in 24ths of a quarter note.

    A METER token starts a new tune at a barline (lines begin with their
    pickup's rest), so packed streams of tunes get correct positions too.
    """
    positions, elapsed, bar = np.zeros(len(tokens), np.int32), 0, 4 * STEPS_PER_QUARTER
    for i, token in enumerate(map(int, tokens)):
        if METER0 <= token < PITCH0:
            bar, elapsed = round(BAR_LENGTHS[token - METER0] * STEPS_PER_QUARTER), 0
        elif is_duration(token):
            elapsed = (elapsed + round(DURATIONS[token - DURATION0] * STEPS_PER_QUARTER)) % bar
        positions[i] = elapsed
    return positions


VOICES = 3  # parts above a line that it hears: the ones just before it in the score
MAX_GAP = POSITIONS  # a gap longer than the longest bar is told as the longest bar


def elapsed_steps(tokens) -> np.ndarray:
    """Time from the line's start after each token, in 24ths of a quarter note (not wrapped at the bar)."""
    tokens = np.asarray(tokens, np.int64)
    steps = np.zeros(len(tokens), np.int64)
    durations = is_duration(tokens)
    steps[durations] = np.round(np.array(DURATIONS)[tokens[durations] - DURATION0] * STEPS_PER_QUARTER)
    return np.cumsum(steps)


def voice_context(tokens, above: list) -> np.ndarray:
    """(2 * VOICES, length): what the parts above a line play when each of its tokens is predicted.

    For each of the nearest `VOICES` parts above (nearest first): its pitch
    token (REST in a rest, PAD if there is no such part or it has ended) and
    how many 24ths its note still lasts, at the time the line has reached after
    each token. The pitch tells the harmony the next note sounds against; the
    gap tells when the parts above move, which is when this one tends to move.
    A chorale's tenor thus hears its alto, then soprano; the soprano, or a folk
    tune, hears nothing. Lines start on the same barline, so times line up.
    """
    now = elapsed_steps(tokens)
    context = np.zeros((2 * VOICES, len(now)), np.int32)
    for slot, part in enumerate(list(reversed(above))[:VOICES]):
        part = np.asarray(part, np.int64)
        closes_event = is_duration(part[1:]) & is_pitch(part[:-1])  # a pitch (or rest) then its duration
        pitches, ends = part[:-1][closes_event], elapsed_steps(part)[1:][closes_event]
        if not len(ends):
            continue
        current = np.searchsorted(ends, now, side="right")  # the part's event sounding at `now`
        sounding, current = current < len(ends), np.minimum(current, len(ends) - 1)
        context[slot] = np.where(sounding, pitches[current], PAD)
        context[VOICES + slot] = np.where(sounding, np.minimum(ends[current] - now, MAX_GAP), 0)
    return context


def transpose(tokens: np.ndarray, semitones: int) -> np.ndarray:
    """Shift every pitch token (rests stay); the caller keeps pitches in range (see `shift_range`)."""
    tokens = np.array(tokens)
    notes = (tokens >= PITCH0) & (tokens < REST)
    tokens[notes] += semitones
    return tokens


def shift_range(tokens: np.ndarray, widest: int = 6) -> tuple[int, int]:
    """The transpositions within ±`widest` semitones that keep every pitch on the piano."""
    tokens = np.asarray(tokens)
    notes = tokens[(tokens >= PITCH0) & (tokens < REST)] - PITCH0 + LOWEST
    if notes.size == 0:
        return 0, 0
    return max(-widest, LOWEST - int(notes.min())), min(widest, HIGHEST - int(notes.max()))


# ------------------------------------------------------------ music21 -> events


def part_events(part, bar_length: float = 4.0) -> list[Event]:
    """One music21 part as a melody: skyline of its notes and chords, ties merged, gaps as rests.

    The line starts at a barline: a pickup (or a late first note) becomes a leading rest.
    """
    from music21 import chord, note, stream

    tops: dict[float, tuple[int, float]] = {}  # onset -> (highest pitch, end)
    for element in part.stripTies().flatten().notes:
        if isinstance(element, note.Note):
            pitches = [element.pitch.midi]
        elif isinstance(element, chord.Chord):  # drums (Unpitched, PercussionChord) are neither
            pitches = [p.midi for p in element.pitches]
        else:
            continue
        length = float(element.quarterLength)
        if length <= 0:  # grace notes
            continue
        onset, top = float(element.offset), max(pitches)
        if onset not in tops or top > tops[onset][0]:
            tops[onset] = (top, onset + length)
    events: list[Event] = []
    onsets = sorted(tops)
    first_measure = part.getElementsByClass(stream.Measure).first()
    pickup = float(first_measure.paddingLeft) if first_measure is not None else 0.0
    lead = (onsets[0] + pickup) % bar_length if onsets else 0.0
    if lead > 1e-6:
        events.append((None, snap(lead, DURATIONS)))
    for onset, following in zip(onsets, onsets[1:] + [None]):
        pitch, end = tops[onset]
        while pitch < LOWEST:
            pitch += 12
        while pitch > HIGHEST:
            pitch -= 12
        if following is not None:
            end = min(end, following)
        events.append((pitch, snap(end - onset, DURATIONS)))
        if following is not None and following - end > 1e-6:
            events.append((None, snap(following - end, DURATIONS)))
    return events


def bar_length_of(score) -> float:
    from music21 import meter

    signature = score.recurse().getElementsByClass(meter.TimeSignature).first()
    return float(signature.barDuration.quarterLength) if signature is not None else 4.0


def melody_group(events: list[Event], intervals: int = 10) -> str:
    """A key shared by melodies that open alike: their first intervals, repeated notes ignored."""
    pitches = [p for p, _ in events if p is not None]
    pitches = [p for i, p in enumerate(pitches) if i == 0 or p != pitches[i - 1]]
    return " ".join(str(b - a) for a, b in zip(pitches, pitches[1 : intervals + 1]))


@dataclass(frozen=True)
class Line:
    piece: str  # where it comes from, e.g. "bach/bwv269"
    part: str  # which part of the piece, e.g. "Soprano"
    group: str  # pieces of a group are split together
    tokens: tuple[int, ...]


def score_lines(score, piece: str, min_events: int = 8) -> list[Line]:
    """Every pitched part of a score with at least `min_events` notes, grouped by the first part's melody."""
    bar_length = bar_length_of(score)
    parts = list(score.parts) or [score]
    named = [(p.partName or f"part{i}", part_events(p, bar_length)) for i, p in enumerate(parts)]
    named = [(name, events) for name, events in named if sum(p is not None for p, _ in events) >= min_events]
    if not named:
        return []
    group = melody_group(named[0][1])
    return [Line(piece, name, group, tuple(encode(events, bar_length))) for name, events in named]


def read_midi(path: Path) -> tuple[float, list[list[Event]]]:
    """(bar length, one event list per pitched part) of a MIDI file, or a one-line BadInput."""
    from music21 import converter, note

    path = check_input_file(path)
    try:
        score = converter.parse(str(path), format="midi", forceSource=True)
    except Exception as error:  # music21 raises MidiException, IndexError, struct.error ... on bad bytes
        raise BadInput(f"{path}: not a readable MIDI file ({type(error).__name__}: {str(error)[:80]})") from None
    bar_length = bar_length_of(score)
    lines = [
        events
        for events in (part_events(p, bar_length) for p in (score.parts or [score]))
        if any(pitch is not None for pitch, _ in events)
    ]
    if not lines:
        drums = any(isinstance(n, note.Unpitched) or "Percussion" in type(n).__name__ for n in score.recurse().notes)
        raise BadInput(
            f"{path}: drums only; no pitched notes to continue" if drums else f"{path}: MIDI file has no notes"
        )
    return bar_length, lines


# ------------------------------------------------------------------ corpora


def read_primer(path: Path) -> tuple[float, list[Event]]:
    """(bar length, events) of a tune to continue: a MIDI file's first pitched part, or the melody of
    a recording (any file `zoo.data.audio` reads), transcribed in 4/4."""
    if Path(path).suffix.lower() in MIDI_SUFFIXES:
        bar_length, parts = read_midi(path)
        return bar_length, parts[0]
    return 4.0, transcribe(audio.read_audio(path, audio.MELODY_RATE), str(path))


def transcribe(samples: np.ndarray, name: str = "<audio>") -> list[Event]:
    """A sung, hummed or played melody (mono samples at `audio.MELODY_RATE`) as events in quarter notes.

    pYIN gives notes in seconds (`zoo.data.audio.melody`); a recording has no written beat, so the
    median note is taken as one quarter note, which keeps the tune's rhythm whatever its tempo.
    Whole octaves move the tune so that its median note lies near G4, where the corpora's melodies
    sit (a hummed tune is often an octave or two lower, and the model has seen little down there).
    """
    notes = audio.melody(samples)
    pitched = [(pitch, seconds) for pitch, seconds in notes if pitch is not None]
    if not pitched:
        raise BadInput(f"{name}: no melody heard (no pitched note of 60 ms or more); hum, sing or play a tune")
    quarter = float(np.clip(np.median([seconds for _, seconds in pitched]), 60 / MAX_BPM, 60 / MIN_BPM))
    shift = 12 * round((MELODY_CENTRE - float(np.median([pitch for pitch, _ in pitched]))) / 12)
    return [
        (None if pitch is None else int(np.clip(pitch + shift, LOWEST, HIGHEST)), snap(seconds / quarter, DURATIONS))
        for pitch, seconds in notes
    ]


def _parse_chorales() -> list[Line]:
    from music21 import corpus

    lines = []
    for name in dict.fromkeys(corpus.chorales.Iterator(returnType="filename")):  # 21 are numbered twice
        lines += score_lines(corpus.parse(name), name)
    return lines


def folk_files() -> list[str]:
    """The Essen collection's ABC files (its test files left out)."""
    from music21 import corpus

    return sorted(
        str(p)
        for p in corpus.getPaths(fileExtensions=("abc",))
        if Path(p).parent.name == "essenFolksong" and not Path(p).stem.startswith("test")
    )


def parse_abc(files: list[str]) -> list[Line]:
    from music21 import converter

    lines = []
    for file in files:
        for number, score in enumerate(converter.parse(file).scores):
            lines += score_lines(score, f"essenFolksong/{Path(file).name}#{number}", min_events=4)
    return lines


def _cached(name: str, parse) -> list[Line]:
    path = cache_dir() / "music" / f"{name}-tokens-v{CACHE_VERSION}.json"
    if path.exists():
        return [Line(r["piece"], r["part"], r["group"], tuple(r["tokens"])) for r in json.loads(path.read_text())]
    lines = parse()
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_output(path, force=True) as tmp:
        tmp.write_text(json.dumps([vars(line) for line in lines]))
    return lines


def corpus_lines(name: str = "chorales") -> list[Line]:
    """A music21 corpus, tokenised (parsed once, then read from the cache)."""
    if name == "chorales":
        return _cached("chorales", _parse_chorales)
    if name == "folk":
        return _cached("folk", lambda: parse_abc(folk_files()))
    raise BadInput(f"{name}: unknown corpus; corpora: {', '.join(CORPORA)}")


def midi_folder(folder: Path) -> list[Line]:
    """Every MIDI file under `folder`, a line per pitched part; unreadable files are skipped."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BadInput(f"{folder}: not a folder of MIDI files")
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".mid", ".midi")):
        try:
            bar_length, parts = read_midi(path)
        except BadInput:
            continue
        group = melody_group(parts[0])
        lines += [
            Line(str(path.relative_to(folder)), f"part{i}", group, tuple(encode(events, bar_length)))
            for i, events in enumerate(parts)
        ]
    if not lines:
        raise BadInput(f"{folder}: no MIDI file with pitched notes in it")
    return lines


def split_of(group: str) -> str:
    """train (80%), valid (10%) or test (10%), fixed by the group's key."""
    bucket = int(hashlib.sha256(group.encode()).hexdigest(), 16) % 10
    return "test" if bucket == 0 else "valid" if bucket == 1 else "train"


def split_lines(lines: list[Line]) -> dict[str, list[Line]]:
    splits = {"train": [], "valid": [], "test": []}
    for line in lines:
        splits[split_of(line.group)].append(line)
    return splits


# ------------------------------------------------------------------ writing


def midi_score(events: list[Event], bar_length: float, tempo: int):
    """A one-part piano music21 score of the events (`.write("midi", fp=...)` writes it)."""
    from music21 import instrument, meter, note, stream
    from music21 import tempo as tempo_marks

    part = stream.Part()
    part.append(instrument.Piano())
    part.append(tempo_marks.MetronomeMark(number=tempo))
    numerator = bar_length * 2 if bar_length % 1 else bar_length  # 1.5 -> 3/8, 3 -> 3/4
    part.append(meter.TimeSignature(f"{int(numerator)}/{8 if bar_length % 1 else 4}"))
    for pitch, duration in events:
        part.append(note.Rest(quarterLength=duration) if pitch is None else note.Note(pitch, quarterLength=duration))
    return stream.Score([part])


def write_midi(events: list[Event], bar_length: float, path: Path, tempo: int, force: bool = False) -> Path:
    """A one-part piano MIDI file, written atomically."""
    with atomic_output(path, force) as tmp:
        midi_score(events, bar_length, tempo).write("midi", fp=str(tmp))
    return path


SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
SAMPLE_RATE = 44100


def fluidsynth_available() -> bool:
    return shutil.which("fluidsynth") is not None and SOUNDFONT.exists()


def synthesise(events: list[Event], tempo: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A small additive synthesiser (three harmonics, plucked envelope): int16 mono samples."""
    seconds_per_quarter = 60.0 / tempo
    total = sum(d for _, d in events) * seconds_per_quarter + 0.5
    audio = np.zeros(int(total * sample_rate), np.float64)
    start = 0.0
    for pitch, duration in events:
        length = duration * seconds_per_quarter
        if pitch is not None:
            t = np.arange(int((length + 0.3) * sample_rate)) / sample_rate
            frequency = 440.0 * 2 ** ((pitch - 69) / 12)
            tone = sum(np.sin(2 * np.pi * frequency * k * t) / k**2 for k in (1, 2, 3))
            envelope = np.minimum(t / 0.01, 1) * np.exp(-3 * t) * np.clip((length + 0.3 - t) / 0.3, 0, 1)
            first = int(start * sample_rate)
            audio[first : first + len(t)] += (tone * envelope)[: len(audio) - first]
        start += length
    peak = np.abs(audio).max(initial=0)
    return (audio / peak * 0.8 * 32767 if peak else audio).astype(np.int16)


def render_audio(
    events: list[Event], bar_length: float, tempo: int, use_fluidsynth: bool | None = None
) -> tuple[int, np.ndarray, str]:
    """(sample rate, int16 samples (N,) or (N, channels), renderer): fluidsynth with the General MIDI
    soundfont, else the NumPy synthesiser."""
    use_fluidsynth = fluidsynth_available() if use_fluidsynth is None else use_fluidsynth
    if use_fluidsynth:
        with tempfile.TemporaryDirectory(prefix="zoo-music-") as folder:
            midi, wav = Path(folder) / "song.mid", Path(folder) / "song.wav"
            midi_score(events, bar_length, tempo).write("midi", fp=str(midi))
            try:
                subprocess.run(
                    [
                        "fluidsynth",
                        "-ni",
                        "-q",
                        "-g",
                        "0.8",
                        "-F",
                        str(wav),
                        "-r",
                        str(SAMPLE_RATE),
                        str(SOUNDFONT),
                        str(midi),
                    ],
                    check=True,
                    capture_output=True,
                    timeout=120,
                )
                return (*read_wav(wav), "fluidsynth")
            except (OSError, subprocess.SubprocessError, wave.Error, EOFError):
                pass  # a broken install: the song still gets its sound
    return SAMPLE_RATE, synthesise(events, tempo), "numpy synthesiser"


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    """(sample rate, int16 samples (N,) or (N, channels)) of a 16-bit WAV file."""
    with wave.open(str(path)) as audio:
        if audio.getsampwidth() != 2:
            raise wave.Error(f"{path}: {8 * audio.getsampwidth()}-bit samples, expected 16")
        samples = np.frombuffer(audio.readframes(audio.getnframes()), np.int16)
        channels, rate = audio.getnchannels(), audio.getframerate()
    return rate, samples if channels == 1 else samples.reshape(-1, channels)


def write_wav(path: Path, sample_rate: int, samples: np.ndarray) -> None:
    """16-bit samples (N,) or (N, channels) as a WAV file (callers write it inside `atomic_output`)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(np.ascontiguousarray(samples, np.int16).tobytes())


def piano_roll(events: list[Event], bar_length: float, title: str = ""):
    """A PIL image of the notes against time in bars."""
    from matplotlib.figure import Figure  # no pyplot: no backend to switch under a notebook's plots
    from matplotlib.patches import Rectangle
    from PIL import Image

    starts = np.cumsum([0.0] + [d for _, d in events])[:-1] / bar_length
    notes = [(s, d / bar_length, p) for s, (p, d) in zip(starts, events) if p is not None]
    fig = Figure(figsize=(max(6.0, min(24.0, len(events) / 12)), 3.5))
    ax = fig.subplots()
    for start, width, pitch in notes:
        ax.add_patch(Rectangle((start, pitch - 0.4), width, 0.8, color="tab:blue"))
    pitches = [p for *_, p in notes] or [60]
    ax.set_xlim(0, max(1.0, sum(d for _, d in events) / bar_length))
    ax.set_ylim(min(pitches) - 2, max(pitches) + 2)
    ax.set_xlabel("bar")
    ax.set_ylabel("MIDI pitch")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=80, format="png")
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")
