"""Music generation: a melody language model over pitch and duration tokens, measured.

deepjazz (Ji-Sung Kim, 2016) trained a two-layer LSTM on one MIDI file and
reported no number. This app keeps its model family, a two-layer LSTM
language model as in Eck & Schmidhuber ("Finding temporal structure in music:
blues improvisation with LSTM recurrent networks", 2002) and Sturm et al.
("Music transcription modelling and composition using deep learning", 2016),
and measures it: held-out negative log-likelihood per token and perplexity,
beside an interpolated Kneser-Ney n-gram (Chen & Goodman, "An empirical study
of smoothing techniques for language modeling", 1998) on the same tokens and
split, whose order and discount are tuned on the validation pieces.

Why an LSTM rather than a small Transformer (Music Transformer, Huang et al.
2018)? Our pieces are short (a chorale voice is about 125 tokens), the data is
small, and generation must be fast on a CPU: an LSTM carries its whole history
in a fixed-size state, so each new token costs one small step, with no
attention over a growing cache (`bench/music_generation.py` times 64 bars).
A Transformer was not trained for comparison.

Why the chorales needed more than a melody model: folk tunes repeat their
phrases within a tune, which an LSTM remembers for the whole tune and an
n-gram only for a few notes; a chorale voice's next pitch hangs on the other
three voices. So each line hears the parts above it in its piece (nearest
first: the alto hears the soprano, the bass all three), as DeepBach (Hadjeres
et al. 2017) and Coconet (Huang et al. 2017) condition each voice on the
others; here in score order only, so that a chorale's four lines get one
proper joint probability and generation needs no Gibbs sampling. The tokens
scored, and the n-gram's, are the same as for a one-voice model; the n-gram
treats the lines as independent. The chorale model also starts from the folk
model (`--init folk`, `--preset finetune`): 350 chorales are small data.
`zoo evaluate music` reports the NLL over pitch and over duration tokens apart
(`nll_by_kind`) to show where a model wins or loses. The model card
`zoo/weights/music.json` (`zoo info music`) holds the measured numbers and
the commands behind them.

Data (`zoo.data.music`): music21's corpus, offline: Bach's 371 chorales (each
voice one melody) by default, the Essen folksongs with `--corpus folk`, or any
folder of MIDI files with `--data DIR`; split by tune (harmonisations of one
hymn tune stay together), training lines transposed at random within ±3
semitones.

Copy check: generated melodies are compared with every training line in
every transposition used in training; the longest run of consecutive
(pitch, duration) events shared with any of them is reported over 20 samples.

    zoo demo music --bars 16 --seed 3 -o song.mid     # song.mid, song.wav, song.png
    zoo demo music --corpus folk --bars 8 -o tune.mid
    zoo demo music --primer tune.mid --temperature 0.9 --top-k 8 -o more.mid
    zoo demo music --primer hum.wav            # a sung, hummed or played tune, transcribed (pYIN)
    zoo.load("music", corpus="folk")(bars=8, seed=3).save("tune.mid")    # in Python
    zoo train music --corpus folk --preset full
    zoo train music --preset finetune --init folk      # the shipped chorale model
    zoo evaluate music --corpus folk
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections import Counter, defaultdict
from pathlib import Path

import keras
import numpy as np
from keras import layers
from PIL import Image

from zoo import api, harness, registry
from zoo.data import music as music_data
from zoo.data.music import DURATION0, PAD, PITCH0, REST, VOCAB_SIZE
from zoo.errors import BadInput
from zoo.files import atomic_output, check_output_path
from zoo.harness import start_from

TEMPO = 96  # beats per minute of the rendered songs
COPY_SAMPLES, COPY_BARS = 20, 64


@dataclasses.dataclass
class Config:
    corpus: str = "chorales"
    data: str | None = None  # a folder of MIDI files instead of the corpus
    init: str | None = None  # a trained music model to start from (`harness.start_from`)
    context: int = 256  # tokens per training row: the longest primer the model takes
    embedding: int = 64
    position_embedding: int = 16
    voice_embedding: int = 32  # per part above: its pitch (see `zoo.data.music.voice_context`)
    gap_embedding: int = 8  # per part above: how long its note still lasts
    units: int = 256
    layers: int = 2
    dropout: float = 0.1
    batch_size: int = 16  # small batches: more updates per CPU second on this little data
    epochs: int = 10
    learning_rate: float = 3e-3
    transpose: int = 3  # augmentation: random shifts of up to this many semitones


PRESETS = {
    "quick": Config(units=128, epochs=10),
    "full": Config(epochs=60),  # the shipped folk weights: run with KERAS_BACKEND=jax, 2.5x faster on a CPU
    # With --init (a model pretrained on a larger corpus): a gentler rate, so as to keep what it knows.
    "finetune": Config(epochs=40, learning_rate=1e-3),
}


# -------------------------------------------------------------------- model


def build_model(config: Config) -> keras.Model:
    """(tokens, bar positions, voice pitches, voice gaps) -> next-token logits (N, context, vocabulary).

    Beside each token the model sees where in the bar the music then stands
    (`zoo.data.music.bar_positions`), as DeepBach (Hadjeres et al. 2017) gives
    its networks the beat: a function of the tokens so far that an LSTM would
    otherwise have to learn to count. It also hears the parts above the line
    (`zoo.data.music.voice_context`): each line of a piece is predicted given
    the ones before it in the score, so a chorale's four lines get one joint
    probability, soprano x alto | soprano x tenor | both x bass | all three.
    That context enters twice, added to the LSTM's input (harmony over time)
    and to its output (the chord the next note sounds against), through
    projections that start at zero: a model without it (`--init` from a
    one-voice model) starts out predicting exactly as before.

    The LSTMs also return their states, unused in training, so `Generator`
    can run the same layers a token at a time.
    """
    length = (config.context,)
    inputs = [
        keras.Input(length, dtype="int32", name="tokens"),
        keras.Input(length, dtype="int32", name="positions"),
        keras.Input(length + (music_data.VOICES,), dtype="int32", name="voice_pitches"),
        keras.Input(length + (music_data.VOICES,), dtype="int32", name="voice_gaps"),
    ]
    logits, _ = forward(music_layers(config), *inputs)
    return keras.Model(inputs, logits, name="music_lstm")


def music_layers(config: Config) -> dict[str, layers.Layer]:
    voices = music_data.VOICES
    named = [
        layers.Embedding(VOCAB_SIZE, config.embedding, name="embedding"),
        layers.Embedding(music_data.POSITIONS, config.position_embedding, name="position_embedding"),
        layers.Concatenate(name="features"),
        layers.Embedding(VOCAB_SIZE, config.voice_embedding, name="voice_embedding"),
        layers.Embedding(music_data.MAX_GAP + 1, config.gap_embedding, name="gap_embedding"),
        layers.Reshape((-1, voices * config.voice_embedding), name="voice_pitch_features"),
        layers.Reshape((-1, voices * config.gap_embedding), name="voice_gap_features"),
        layers.Concatenate(name="voices"),
        layers.Dense(config.embedding + config.position_embedding, kernel_initializer="zeros", name="voices_in"),
        layers.Add(name="heard_input"),
        layers.Dense(config.units, kernel_initializer="zeros", name="voices_out"),
        layers.Add(name="heard_output"),
        layers.Dropout(config.dropout, name="dropout_out"),
        layers.Dense(VOCAB_SIZE, name="logits"),
    ]
    for i in range(config.layers):
        named += [
            layers.Dropout(config.dropout, name=f"dropout{i}"),
            layers.LSTM(config.units, return_sequences=True, return_state=True, name=f"lstm{i}"),
        ]
    return {layer.name: layer for layer in named}


def forward(parts: dict, tokens, positions, voice_pitches=None, voice_gaps=None, states=None):
    """The model's graph over its named layers: (logits, LSTM states). `Generator` runs it a step at a time;
    a model saved before it heard the parts above has no voice layers and takes no voice inputs."""
    x = parts["features"]([parts["embedding"](tokens), parts["position_embedding"](positions)])
    hears = "voices" in parts
    if hears:
        voices = parts["voices"](
            [
                parts["voice_pitch_features"](parts["voice_embedding"](voice_pitches)),
                parts["voice_gap_features"](parts["gap_embedding"](voice_gaps)),
            ]
        )
        x = parts["heard_input"]([x, parts["voices_in"](voices)])
    states_out = []
    for i in range(sum(name.startswith("lstm") for name in parts)):
        x = parts[f"dropout{i}"](x)
        x, h, c = parts[f"lstm{i}"](x, initial_state=None if states is None else states[2 * i : 2 * i + 2])
        states_out += [h, c]
    if hears:
        x = parts["heard_output"]([x, parts["voices_out"](voices)])
    return parts["logits"](parts["dropout_out"](x)), states_out


def hears_voices(model: keras.Model) -> bool:
    """Whether the model takes the parts above its line (files from before that context do not)."""
    return "voice_pitches" in [tensor.name for tensor in model.inputs]


def model_context(model: keras.Model) -> int:
    return int(model.input_shape[0][1])


class Generator:
    """The model as a one-token step with explicit LSTM states, for fast sampling."""

    def __init__(self, model: keras.Model):
        self.hears_voices = hears_voices(model)
        lstms = [layer for layer in model.layers if isinstance(layer, layers.LSTM)]
        inputs = [keras.Input((1,), dtype="int32"), keras.Input((1,), dtype="int32")]
        if self.hears_voices:
            inputs += [keras.Input((1, music_data.VOICES), dtype="int32") for _ in range(2)]
        states_in = [keras.Input((lstm.units,)) for lstm in lstms for _ in range(2)]
        logits, states_out = forward({layer.name: layer for layer in model.layers}, *inputs, states=states_in)
        self.step_model = keras.Model(inputs + states_in, [logits, *states_out])
        self.state_sizes = [s.shape[-1] for s in states_in]

    def step(
        self, tokens: np.ndarray, positions: np.ndarray, states: list[np.ndarray], heard: np.ndarray | None = None
    ):
        """Logits (N, vocabulary) and new states after feeding one token (and its bar position) per row;
        `heard` (N, 2 * VOICES) is what the parts above play then (`voice_context`), none by default."""
        inputs = [tokens[:, None].astype("int32"), positions[:, None].astype("int32")]
        if self.hears_voices:
            heard = np.zeros((len(tokens), 2 * music_data.VOICES), np.int32) if heard is None else heard
            inputs += [heard[:, None, : music_data.VOICES], heard[:, None, music_data.VOICES :]]
        logits, *states = self.step_model.predict_on_batch([*inputs, *states])
        return np.asarray(logits)[:, 0].astype(np.float64), [np.asarray(s) for s in states]

    def sample(
        self, prefix: list[int], bars: float, seeds: list[int], temperature: float = 1.0, top_k: int = 0
    ) -> list[list[int]]:
        """One continuation of `prefix` (a METER token, then events) per seed, each `bars` bars long.

        Sampling follows the token grammar (a duration after every pitch, a
        pitch or rest after every duration) and never ends a song early.
        """
        bar_length, _ = music_data.decode(prefix)
        target = bars * bar_length
        rows = len(seeds)
        rngs = [np.random.default_rng(seed) for seed in seeds]
        states = [np.zeros((rows, size), np.float32) for size in self.state_sizes]
        for token, position in zip(prefix[:-1], music_data.bar_positions(prefix[:-1])):
            _, states = self.step(np.full(rows, token), np.full(rows, position), states)
        last = np.full(rows, prefix[-1])
        position = np.full(rows, music_data.bar_positions(prefix)[-1])
        bar_steps = round(bar_length * music_data.STEPS_PER_QUARTER)
        songs = [[] for _ in range(rows)]
        lengths = np.zeros(rows)
        while (lengths < target).any():
            logits, states = self.step(last, position, states)
            for row in np.flatnonzero(lengths < target):
                token = next_token(logits[row], int(last[row]), temperature, top_k, rngs[row])
                songs[row].append(token)
                last[row] = token
                if music_data.is_duration(token):
                    duration = music_data.DURATIONS[token - DURATION0]
                    lengths[row] += duration
                    position[row] = (position[row] + round(duration * music_data.STEPS_PER_QUARTER)) % bar_steps
        return songs


def check_temperature(temperature: float) -> None:
    """Zero, negative and infinite temperatures have no distribution to sample (bars and top-k: the card)."""
    if not temperature > 0 or not math.isfinite(temperature):
        raise BadInput(f"--temperature {temperature}: must be a positive number")


def next_token(logits: np.ndarray, last: int, temperature: float, top_k: int, rng: np.random.Generator) -> int:
    """Sample the token after `last` from the model's logits, within the grammar: a duration after a pitch
    or rest, else a pitch or rest (never END: a song ends when it has its bars)."""
    allowed = np.zeros(VOCAB_SIZE, bool)
    if music_data.is_pitch(last):
        allowed[DURATION0:] = True
    else:
        allowed[PITCH0 : REST + 1] = True
    scores = np.where(allowed, logits / temperature, -np.inf)
    if top_k:
        scores = np.where(scores >= np.sort(scores)[-top_k], scores, -np.inf)
    probabilities = np.exp(scores - scores.max())
    return int(rng.choice(len(scores), p=probabilities / probabilities.sum()))


# --------------------------------------------------------------------- data


HEARD = slice(2, 2 + 2 * music_data.VOICES)  # rows of `line_features` holding the parts above
HEARD_PITCHES = slice(2, 2 + music_data.VOICES)


def line_features(tokens, above: list = ()) -> np.ndarray:
    """(2 + 2 * VOICES, length): a line's tokens, their bar positions and what the parts `above` it play."""
    return np.concatenate(
        [
            np.stack([np.asarray(tokens, np.int32), music_data.bar_positions(tokens)]),
            music_data.voice_context(tokens, above),
        ]
    )


def opens_piece(lines: list[music_data.Line]) -> list[bool]:
    """Whether each line is its piece's first (a corpus lists a piece's parts together, in score order)."""
    return [i == 0 or line.piece != lines[i - 1].piece for i, line in enumerate(lines)]


def features_of(lines: list[music_data.Line]) -> list[np.ndarray]:
    """`line_features` of each line, hearing the lines before it in its piece."""
    features, above = [], []
    for line, first in zip(lines, opens_piece(lines)):
        if first:
            above = []
        features.append(line_features(line.tokens, above))
        above.append(line.tokens)
    return features


def transposed(features: np.ndarray, semitones: int) -> np.ndarray:
    """A line's features in another key: its own pitches and those it hears move together."""
    features = features.copy()
    features[0] = music_data.transpose(features[0], semitones)
    features[HEARD_PITCHES] = music_data.transpose(features[HEARD_PITCHES], semitones)
    return features


def rows_of(line: np.ndarray, context: int) -> list[np.ndarray]:
    """A (features, length) line cut into rows of context + 1 steps that overlap by one (each row predicts
    `context`)."""
    return [line[:, start : start + context + 1] for start in range(0, max(line.shape[1] - 1, 1), context)]


def pad_rows(rows: list[np.ndarray], context: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """(inputs, targets, weights), right-padded; padding weighs nothing and, the LSTM being causal, changes nothing."""
    features = np.zeros((len(rows), 2 + 2 * music_data.VOICES, context), np.int32)  # PAD is 0
    targets = np.full((len(rows), context), PAD, np.int32)
    for i, row in enumerate(rows):
        length = row.shape[1] - 1
        features[i, :, :length], targets[i, :length] = row[:, :-1], row[0, 1:]
    heard = features[:, HEARD].transpose(0, 2, 1)
    inputs = {
        "tokens": features[:, 0],
        "positions": features[:, 1],
        "voice_pitches": heard[..., : music_data.VOICES],
        "voice_gaps": heard[..., music_data.VOICES :],
    }
    return inputs, targets, (targets != PAD).astype(np.float32)


def line_rows(lines: list[music_data.Line], context: int) -> tuple[dict, np.ndarray, np.ndarray]:
    """Every line on its own rows, from its start: how held-out lines are scored."""
    return pad_rows([row for line in features_of(lines) for row in rows_of(line, context)], context)


class TransposedRows(harness.EpochSeeded):
    """Training rows: each epoch, the lines shuffled, each transposed at random, packed end to end.

    Packing (rather than one padded row per line) wastes no computation on
    padding; the LSTM learns that a METER token starts a new tune.
    """

    def __init__(self, lines: list[music_data.Line], config: Config, seed: int):
        super().__init__(seed)
        self.lines = features_of(lines)  # positions and gaps don't change with the key
        self.config = config
        self.rows = len(rows_of(np.zeros((1, sum(line.shape[1] for line in self.lines))), config.context))
        self.packed_epoch, self.packed = None, None

    def __len__(self):
        return math.ceil(self.rows / self.config.batch_size)

    def epoch_rows(self) -> list[np.ndarray]:
        if self.packed_epoch != self.epoch:
            rng = self.rng()
            stream = []
            for i in rng.permutation(len(self.lines)):
                line = self.lines[i]
                low, high = music_data.shift_range(np.vstack([line[0], line[HEARD_PITCHES]]), self.config.transpose)
                stream.append(transposed(line, int(rng.integers(low, high + 1))))
            self.packed_epoch, self.packed = self.epoch, rows_of(np.concatenate(stream, axis=1), self.config.context)
        return self.packed

    def __getitem__(self, index):
        size = self.config.batch_size
        return pad_rows(self.epoch_rows()[index * size : (index + 1) * size], self.config.context)


def load_lines(corpus: str, data: str | Path | None) -> dict[str, list[music_data.Line]]:
    """train / valid / test lines of the corpus or of a MIDI folder, split by tune."""
    lines = music_data.midi_folder(Path(data)) if data else music_data.corpus_lines(corpus)
    splits = music_data.split_lines(lines)
    if not splits["train"]:
        raise BadInput(f"{data or corpus}: no piece fell in the training split (too few pieces)")
    for held_out in ("valid", "test"):  # tiny folders: score on the training pieces rather than on nothing
        splits[held_out] = splits[held_out] or splits["train"]
    return splits


# ------------------------------------------------------- n-gram baseline


class KneserNey:
    """Interpolated Kneser-Ney n-gram model over tokens (Chen & Goodman 1998, one discount).

    P(w | h) = max(c(h, w) - D, 0) / c(h) + D * T(h) / c(h) * P(w | h minus its first token),
    with c the raw counts at the highest order and continuation counts (distinct
    left neighbours) below it, T(h) the number of distinct tokens after h, and
    the uniform distribution at the bottom, so every token gets some probability.
    """

    def __init__(self, sequences, max_order: int = 8):
        self.max_order = max_order
        raw = [defaultdict(Counter) for _ in range(max_order + 1)]  # raw[n][context of n-1 tokens][token]
        for tokens in sequences:
            padded = [PAD] * (max_order - 1) + [int(t) for t in tokens]
            for i in range(max_order, len(padded)):
                for n in range(1, max_order + 1):
                    raw[n][tuple(padded[i - n + 1 : i])][padded[i]] += 1
        continuation = [defaultdict(Counter) for _ in range(max_order + 1)]
        for n in range(2, max_order + 1):
            for context, following in raw[n].items():
                for token in following:
                    continuation[n - 1][context[1:]][token] += 1
        self.tables = [self._summarise(raw[n]) for n in range(max_order + 1)]
        self.continuation_tables = [self._summarise(continuation[n]) for n in range(max_order + 1)]

    @staticmethod
    def _summarise(counts):
        return {context: (following, sum(following.values()), len(following)) for context, following in counts.items()}

    def log_likelihoods(self, tokens, order: int, discount: float) -> np.ndarray:
        """Natural-log probability of each token after the first, given those before it."""
        padded = [PAD] * (self.max_order - 1) + [int(t) for t in tokens]
        result = []
        for i in range(self.max_order, len(padded)):
            token, probability = padded[i], 1.0 / VOCAB_SIZE
            for n in range(1, order + 1):
                tables = self.tables if n == order else self.continuation_tables
                entry = tables[n].get(tuple(padded[i - n + 1 : i]))
                if entry is None:  # unseen context: all weight on the shorter one
                    continue
                following, total, types = entry
                probability = (
                    max(following.get(token, 0) - discount, 0) / total + discount * types / total * probability
                )
            result.append(math.log(probability))
        return np.array(result)

    def nll(self, lines, order: int, discount: float) -> float:
        return -float(np.mean(np.concatenate([self.log_likelihoods(line, order, discount) for line in lines])))


def ngram_baseline(splits: dict[str, list[music_data.Line]], transpose: int) -> dict:
    """Kneser-Ney fitted on the training lines, with or without the model's transpositions,
    its order and discount too tuned on valid, scored on test: the strongest n-gram we can pick fairly."""
    plain = [line.tokens for line in splits["train"]]
    transposed = []
    for tokens in plain:
        low, high = music_data.shift_range(tokens, transpose)
        transposed += [music_data.transpose(tokens, s) for s in range(low, high + 1)]
    valid = [line.tokens for line in splits["valid"]]
    candidates = []
    for augmentation, lines in (("none", plain), (f"transposed ±{transpose}", transposed)):
        model = KneserNey(lines)
        for order in range(2, model.max_order + 1):
            for discount in (0.6, 0.75, 0.9):
                candidates.append((model.nll(valid, order, discount), model, order, discount, augmentation))
    _, model, order, discount, augmentation = min(candidates, key=lambda c: c[0])
    log_likelihoods = np.concatenate([model.log_likelihoods(line.tokens, order, discount) for line in splits["test"]])
    nll = -float(log_likelihoods.mean())
    return {
        "name": f"interpolated Kneser-Ney {order}-gram (D={discount}, augmentation: {augmentation})",
        "nll": round(nll, 4),
        "perplexity": round(math.exp(nll), 3),
        "nll_by_kind": nll_by_kind(log_likelihoods, splits["test"]),
        "nll_by_part": nll_by_part(log_likelihoods, splits["test"]),
    }


def nll_by_part(log_likelihoods: np.ndarray, lines: list[music_data.Line]) -> dict:
    """Mean NLL over each piece's first line (a chorale's soprano, which hears no part above it) and
    over the lines below it: how much of a model's lead comes from hearing the other parts."""
    first = np.concatenate([np.full(len(line.tokens) - 1, opens) for line, opens in zip(lines, opens_piece(lines))])
    return {
        part: round(-float(log_likelihoods[mask].mean()), 4) if mask.any() else None
        for part, mask in (("first", first), ("below", ~first))
    }


def nll_by_kind(log_likelihoods: np.ndarray, lines: list[music_data.Line]) -> dict:
    """Mean NLL over the pitch-or-rest tokens and over the duration tokens: where a model wins."""
    targets = np.concatenate([np.asarray(line.tokens[1:]) for line in lines])
    kinds = {"pitch_or_rest": (PITCH0 <= targets) & (targets <= REST), "duration": targets >= DURATION0}
    return {kind: round(-float(log_likelihoods[mask].mean()), 4) for kind, mask in kinds.items()}


# ------------------------------------------------------------ evaluation


def model_log_likelihoods(model: keras.Model, lines: list[music_data.Line], batch_size: int = 64) -> np.ndarray:
    """Natural-log probability of every token after each line's first, in line order."""
    inputs, targets, weights = line_rows(lines, model_context(model))
    names = [tensor.name for tensor in model.inputs]
    scored = []
    for start in range(0, len(targets), batch_size):
        batch = {name: values[start : start + batch_size] for name, values in inputs.items() if name in names}
        logits = keras.ops.convert_to_numpy(model(batch, training=False)).astype(np.float64)
        logits -= logits.max(axis=-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
        picked = np.take_along_axis(log_probs, targets[start : start + batch_size, :, None], axis=-1)[..., 0]
        scored.append(picked[weights[start : start + batch_size] > 0])  # row by row: each line's rows in order
    return np.concatenate(scored)


def model_nll(model: keras.Model, lines: list[music_data.Line]) -> float:
    """Mean negative log-likelihood (nats) per predicted token."""
    return -float(model_log_likelihoods(model, lines).mean())


def event_codes(tokens) -> list[int]:
    """A line's (pitch, duration) events as one integer each."""
    _, events = music_data.decode(tokens)
    return [(0 if p is None else p) * len(music_data.DURATIONS) + music_data.DURATIONS.index(d) for p, d in events]


def longest_shared_runs(samples: list[list[int]], lines: list[music_data.Line], transpose: int) -> list[int]:
    """For each sample, the longest run of consecutive events it shares with any line in any transposition.

    All training events go into one array with a separator after each line;
    for growing run lengths, hashes of every window are compared (64-bit
    polynomial hashes: a collision is vanishingly unlikely).
    """
    corpus = []
    for line in lines:
        low, high = music_data.shift_range(line.tokens, transpose)
        for shift in range(low, high + 1):
            corpus += event_codes(music_data.transpose(line.tokens, shift)) + [-1]
    corpus = np.array(corpus, np.int64).view(np.uint64)
    codes = [np.array(event_codes(s), np.int64).view(np.uint64) for s in samples]
    base = np.uint64(1_000_003)
    runs = [0] * len(samples)
    corpus_hash, sample_hashes, length = corpus.copy(), [c.copy() for c in codes], 1
    with np.errstate(over="ignore"):
        while True:
            windows = corpus_hash[~_spans_separator(corpus, length)]
            found = [len(h) > 0 and bool(np.isin(h, windows).any()) for h in sample_hashes]
            if not any(found):
                return runs
            runs = [length if hit else run for hit, run in zip(found, runs)]
            length += 1
            corpus_hash = corpus_hash[:-1] * base + corpus[length - 1 :]
            sample_hashes = [h[:-1] * base + c[length - 1 :] for h, c in zip(sample_hashes, codes)]


def _spans_separator(corpus: np.ndarray, length: int) -> np.ndarray:
    """For each window of `length` events, whether it contains a line separator."""
    separators = np.concatenate([[0], np.cumsum(corpus == np.uint64(2**64 - 1))])
    return separators[length:] - separators[:-length] > 0


def evaluate_model(
    model: keras.Model, splits: dict, transpose: int, samples: int = COPY_SAMPLES, bars: int = COPY_BARS
) -> dict:
    log_likelihoods = model_log_likelihoods(model, splits["test"])
    nll = -float(log_likelihoods.mean())
    baseline = ngram_baseline(splits, transpose)
    metrics = {
        "test_lines": len(splits["test"]),
        "test_tokens": sum(len(line.tokens) - 1 for line in splits["test"]),
        "nll": round(nll, 4),
        "perplexity": round(math.exp(nll), 3),
        "nll_by_kind": nll_by_kind(log_likelihoods, splits["test"]),
        "nll_by_part": nll_by_part(log_likelihoods, splits["test"]),
        "baseline": baseline,
        "perplexity_vs_baseline": round(math.exp(nll) / baseline["perplexity"] - 1, 4),
    }
    if samples:
        songs = Generator(model).sample(default_prefix(), bars, list(range(samples)))
        runs = longest_shared_runs(songs, splits["train"], transpose)
        metrics["copy_check"] = {
            "samples": samples,
            "bars": bars,
            "seeds": f"0-{samples - 1}",
            "longest_shared_run": {"max": max(runs), "median": float(np.median(runs)), "all": runs},
        }
    return metrics


# ---------------------------------------------------------- CLI entry points


def default_prefix(bar_length: float = 4.0) -> list[int]:
    return music_data.encode([], bar_length)[:-1]


def train(
    *,
    preset: str,
    epochs: int | None,
    data: Path | None,
    out: Path | None,
    resume: bool,
    seed: int,
    corpus: str,
    init: str | None,
) -> dict:
    config = dataclasses.replace(PRESETS[preset], corpus=corpus, data=str(data) if data else None, init=init)
    donor = load(init, None) if init and not resume else None  # a resumed run restores its own weights
    if donor is not None:
        start_from(build_model(config), donor, init)  # a bad --init fails here, before a run directory is made
    splits = load_lines(config.corpus, config.data)
    run = harness.start_run("music", config, out, resume, seed, epochs)
    config = run.config
    rows = TransposedRows(splits["train"], config, seed)
    steps = config.epochs * len(rows)
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, steps)
    with harness.scope():  # a distributed run's model and optimizer are mirrored on every replica
        model = build_model(config)
        if donor is not None:
            print(f"--init {init}: copied " + ", ".join(start_from(model, donor, init)), flush=True)
        model.compile(
            optimizer=keras.optimizers.Adam(schedule, clipnorm=1.0),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        )
    valid = line_rows(splits["valid"], config.context)
    harness.fit(run, model, rows, valid, epochs=config.epochs, monitor="val_loss", mode="min")
    best = harness.best_model(run)
    metrics = evaluate_model(best, splits, config.transpose, samples=0)
    run.write_metrics(metrics)
    return {"run": str(run.path), **metrics}


def load(weights: str | Path | None, corpus: str | None) -> keras.Model:
    """`--weights`, or the shipped model trained on `corpus`."""
    return harness.load_model(registry.resolve_weights("music", weights, corpus=corpus), app="music")


def evaluate(*, weights: str | None, data: Path | None, corpus: str, samples: int) -> dict:
    model = load(weights, corpus)
    return evaluate_model(model, load_lines(corpus, data), Config.transpose, samples=samples)


def song_paths(midi: Path, force: bool) -> tuple[Path, Path, Path]:
    """The song's MIDI file and the WAV and PNG beside it, all checked before any work."""
    midi = Path(midi)
    if midi.suffix.lower() not in (".mid", ".midi"):
        raise BadInput(f"{midi}: output must be a .mid file (the .wav and .png are written beside it)")
    return tuple(check_output_path(p, force) for p in (midi, midi.with_suffix(".wav"), midi.with_suffix(".png")))


@dataclasses.dataclass
class Song(api.Result):
    """A generated song: its tokens (primer included), its sound, its piano roll, and how long it is.

    `save("song.mid")` writes song.mid, song.wav and song.png; the MIDI is `output`.
    """

    bars: int
    primer_events: int  # notes and rests taken from the primer
    events: int  # new notes and rests
    seconds: float
    renderer: str  # what made the sound: fluidsynth (General MIDI soundfont) or the NumPy synthesiser
    wav: str | None = None  # where `save` wrote the audio and the piano roll
    png: str | None = None
    # Rich but not displayed (so out of the JSON record): `music_data.decode(tokens)` gives the notes and rests.
    tokens: list[int] = dataclasses.field(default=None, repr=False, compare=False, metadata={"rich": True})
    audio: tuple[int, np.ndarray] = api.shown("audio", rich=True)  # (sample rate, int16 samples)
    piano_roll: Image.Image = api.shown("image", rich=True)

    @property
    def text(self) -> str:
        files = f"{self.output}, {self.wav} ({self.renderer}), {self.png}: " if self.output else ""
        return f"{files}{self.bars} bars, {self.events} new notes and rests, {self.seconds:.0f} s"

    def save(self, path: str | Path, force: bool = False) -> Path:
        midi, wav, png = song_paths(Path(path), force)
        bar_length, events = music_data.decode(self.tokens)
        # All or nothing: each file is renamed into place only once all three are written.
        with contextlib.ExitStack() as stack:
            midi_tmp, wav_tmp, png_tmp = (stack.enter_context(atomic_output(p, force)) for p in (midi, wav, png))
            music_data.midi_score(events, bar_length, TEMPO).write("midi", fp=str(midi_tmp))
            music_data.write_wav(wav_tmp, *self.audio)
            self.piano_roll.save(png_tmp)
        self.output, self.wav, self.png = str(midi), str(wav), str(png)
        return midi


class Predictor(api.Predictor):
    """`zoo.load("music", corpus="chorales")`: the melody model trained on that corpus; a call generates
    one song, seeded (`bars=`, `temperature=`, `top_k=`, `primer=` a MIDI file or a recording to continue)."""

    def __init__(self, spec, options):
        super().__init__(spec, options)
        self.model = load(self.weights, self.options["corpus"])
        self.generator = Generator(self.model)

    def predict(
        self, inputs, *, primer: Path | None, bars: int, temperature: float, top_k: int, seed: int, **loaded
    ) -> Song:
        if inputs is not None:
            raise BadInput("music: takes no input; to continue a tune (MIDI or a recording), pass primer=PATH")
        check_temperature(temperature)
        prefix = default_prefix()
        if primer is not None:
            bar_length, events = music_data.read_primer(primer)
            prefix = music_data.encode(events, bar_length)[:-1]
        if len(prefix) > model_context(self.model):
            raise BadInput(
                f"{primer}: primer is {len(prefix)} tokens ({len(prefix) // 2} notes and rests), longer "
                f"than the model's context of {model_context(self.model)} tokens; use a shorter primer"
            )
        tokens = prefix + self.generator.sample(prefix, bars, [seed], temperature, top_k)[0]
        bar_length, events = music_data.decode(tokens)
        primer_events = (len(prefix) - 1) // 2
        title = f"seed {seed}, temperature {temperature}, top-k {top_k or 'all'}" + (
            f", primer {Path(primer).name}" if primer else ""
        )
        sample_rate, samples, renderer = music_data.render_audio(events, bar_length, TEMPO)
        return Song(
            bars,
            primer_events,
            len(events) - primer_events,
            round(sum(d for _, d in events) * 60 / TEMPO, 1),
            renderer,
            tokens=tokens,
            audio=(sample_rate, samples),
            piano_roll=music_data.piano_roll(events, bar_length, title),
        )

    def output_name(self, source: Path | None) -> str:
        return "song.mid"

    def target(self, source: Path | None, output: Path | None, many: bool, force: bool) -> Path:
        return song_paths(output or Path(self.output_name(source)), force)[0]

    def exportables(self) -> list:
        """One graph, the sampling loop with the caller: `step`, a token per row (N,) with its bar position
        (and what the parts above play then, for a model that hears them) and the LSTMs' states (h0, c0, h1,
        c1) -> the next token's logits (N, vocabulary) and the new states (h0_next, ...). Start from zero
        states, feed the METER token then the primer, then sample (`next_token` keeps the token grammar)."""
        from zoo.export import Exportable

        inputs = [keras.Input((), dtype="int32", name=name) for name in ("token", "position")]
        if self.generator.hears_voices:
            voices = (music_data.VOICES,)
            inputs += [keras.Input(voices, dtype="int32", name=name) for name in ("voice_pitches", "voice_gaps")]
        lstms = [layer for layer in self.model.layers if isinstance(layer, layers.LSTM)]
        states = [keras.Input((lstm.units,), name=f"{kind}{i}") for i, lstm in enumerate(lstms) for kind in "hc"]
        # Each LSTM as its cell, called once: no loop in the graph (LiteRT's would need TensorFlow's ops)
        parts = {layer.name: layer for layer in self.model.layers} | {lstm.name: OneStep(lstm) for lstm in lstms}
        logits, new_states = forward(parts, *(keras.ops.expand_dims(x, 1) for x in inputs), states=states)
        outputs = {"logits": logits[:, 0], **{f"{s.name}_next": new for s, new in zip(states, new_states)}}
        step = keras.Model([*inputs, *states], outputs, name="music_step")
        lines = load_lines(self.options["corpus"], None)["test"][:EXPORT_LINES]

        def held_out(run) -> dict:
            log_likelihoods, hits = step_scores(run, lines, {s.name: s.shape[-1] for s in states})
            nll = -float(log_likelihoods.mean())
            return {
                "nll": round(nll, 4),
                "perplexity": round(math.exp(nll), 3),
                "next_token_accuracy": round(float(hits.mean()), 4),
                "lines": len(lines),
                "tokens": len(hits),
            }

        no_int8 = (
            "music's step is not quantised to int8: the LSTM state it takes and returns would be requantised "
            "at every token, its error carried along the song; --quantize float16 halves the file"
        )
        return [Exportable("step", step, held_out, None, {"context": model_context(self.model)}, no_int8=no_int8)]


# ---------------------------------------------------------------- export

EXPORT_LINES = 40  # held-out lines the exported step is scored on


class OneStep(layers.Layer):
    """An LSTM layer as one call of its cell: (N, 1, features) and its states -> (N, 1, units), h, c."""

    def __init__(self, lstm: layers.LSTM):
        super().__init__(name=f"{lstm.name}_step")
        self.cell = lstm.cell  # its weights, shared

    def call(self, x, initial_state):
        output, (h, c) = self.cell(x[:, 0], initial_state)
        return keras.ops.expand_dims(output, 1), h, c


def step_scores(run, lines: list[music_data.Line], state_sizes: dict[str, int]) -> tuple[np.ndarray, np.ndarray]:
    """Each held-out token's log-likelihood and whether it was the most likely, the lines fed a token at a
    time through a step `Runner` (zoo.export) from zero states: the whole line is the history, no window."""
    from zoo.text.beam_search import log_softmax

    features = features_of(lines)
    lengths = np.array([line.shape[1] for line in features])
    padded = np.zeros((len(features), features[0].shape[0], lengths.max()), np.int32)
    for row, line in zip(padded, features):
        row[:, : line.shape[1]] = line
    states = {name: np.zeros((len(lines), size), np.float32) for name, size in state_sizes.items()}
    voices = {"voice_pitches": HEARD_PITCHES, "voice_gaps": slice(HEARD_PITCHES.stop, HEARD.stop)}
    log_likelihoods, hits = [], []
    for t in range(lengths.max() - 1):
        given = {"token": padded[:, 0, t], "position": padded[:, 1, t], **states}
        outputs = run(given | {name: padded[:, rows, t] for name, rows in voices.items() if name in run.inputs})
        states = {name: outputs[name + "_next"] for name in states}
        log_probs = log_softmax(outputs["logits"].astype(np.float64))
        targets, scored = padded[:, 0, t + 1], t + 1 < lengths
        log_likelihoods.append(log_probs[np.arange(len(targets)), targets][scored])
        hits.append((log_probs.argmax(axis=-1) == targets)[scored])
    return np.concatenate(log_likelihoods), np.concatenate(hits)
