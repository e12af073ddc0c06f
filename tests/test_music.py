"""Music generation: tokens, split, n-gram baseline, copy check, sampling, demo outputs, bad input.

Fast tests use small data the tests generate (MIDI files written here, tiny
untrained models); the real corpus and training to quality are `-m slow`.
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest

from zoo.data import music as music_data

from conftest import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]


def smf(events: list[tuple[int, list[int]]], ticks_per_quarter: int = 480) -> bytes:
    """A one-track Standard MIDI File from (delta ticks, event bytes) pairs."""

    def variable_length(n: int) -> bytes:
        out = [n & 0x7F]
        n >>= 7
        while n:
            out.append(0x80 | (n & 0x7F))
            n >>= 7
        return bytes(reversed(out))

    body = b"".join(variable_length(delta) + bytes(event) for delta, event in events) + b"\x00\xff\x2f\x00"
    return b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks_per_quarter) + b"MTrk" + struct.pack(">I", len(body)) + body


def melody(seed: int, notes: int = 24) -> list[tuple]:
    rng = np.random.default_rng(seed)
    pitches = 60 + np.cumsum(rng.integers(-3, 4, notes))
    return [(int(p), float(rng.choice([0.5, 1.0, 1.0, 2.0]))) for p in pitches]


@pytest.fixture(scope="module")
def midi_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("midi")
    for i in range(12):
        music_data.write_midi(melody(i), 4.0, folder / f"tune{i}.mid", tempo=100)
    return folder


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory) -> Path:
    """An untrained model with a 64-token context: enough for sampling and I/O."""
    from zoo.audio import music

    path = tmp_path_factory.mktemp("weights") / "tiny.keras"
    music.build_model(music.Config(context=64, embedding=8, units=16, layers=1)).save(path)
    return path


# ------------------------------------------------------------------- tokens


def test_tokens_round_trip_and_transposition_stays_on_the_piano():
    events = [(60, 1.0), (None, 0.5), (108, 1.5), (21, 1 / 3)]
    tokens = music_data.encode(events, 3.0)
    assert tokens[-1] == music_data.END and max(tokens) < music_data.VOCAB_SIZE
    assert music_data.decode(tokens) == (3.0, events)
    assert music_data.shift_range(tokens) == (0, 0)  # already spans the whole piano
    low, high = music_data.shift_range(music_data.encode([(60, 1.0)], 4.0))
    assert (low, high) == (-6, 6)
    assert music_data.decode(music_data.transpose(tokens[:5], 5))[1] == [(65, 1.0), (None, 0.5)]


def test_part_events_keeps_the_top_note_merges_ties_and_fills_gaps():
    from music21 import chord, note, stream, tie

    part = stream.Part()
    part.insert(0, chord.Chord(["C4", "E4", "G4"], quarterLength=1))
    first, second = note.Note("D5", quarterLength=1), note.Note("D5", quarterLength=1)
    first.tie, second.tie = tie.Tie("start"), tie.Tie("stop")
    part.insert(1, first)
    part.insert(2, second)
    part.insert(1, note.Note("C3", quarterLength=3))  # lower, overlapping: hidden by the skyline
    part.insert(4, note.Note("A4", quarterLength=0.5))  # after a one-beat gap
    assert music_data.part_events(part) == [(67, 1.0), (74, 2.0), (None, 1.0), (69, 0.5)]
    late = stream.Part()
    late.insert(5.0, note.Note("C4", quarterLength=1))
    assert music_data.part_events(late, bar_length=4.0)[0] == (None, 1.0)  # starts on a barline


def test_voice_context_is_what_the_parts_above_sound_when_each_token_is_predicted():
    soprano = music_data.encode([(67, 1.0), (69, 2.0)], 4.0)
    alto = music_data.encode([(60, 0.5), (62, 0.5), (64, 2.0), (65, 1.0)], 4.0)
    context = music_data.voice_context(alto, [soprano])
    voices = music_data.VOICES

    def pitch(midi):
        return music_data.PITCH0 + midi - music_data.LOWEST

    # after METER, 60, 0.5, 62, 0.5, 64, 2.0, 65, 1.0: at times 0, 0, 12, 12, 24, 24, 72, 72, 96 (24ths)
    assert list(context[0, :9]) == [pitch(67)] * 4 + [pitch(69)] * 2 + [music_data.PAD] * 3  # soprano ended at 72
    assert list(context[voices, :9]) == [24, 24, 12, 12, 48, 48, 0, 0, 0]
    assert not context[1:voices].any() and not context[voices + 1 :].any()  # one part above, nearest slot first
    assert not music_data.voice_context(soprano, []).any()
    assert not music_data.voice_context(soprano, [()]).any()  # a part above with no notes


def test_lines_hear_the_parts_before_them_in_their_piece_and_transpose_with_them():
    from zoo.audio import music

    soprano, alto = (music_data.encode(melody(seed), 4.0) for seed in (1, 2))
    lines = [
        music_data.Line("a", "Soprano", "g", tuple(soprano)),
        music_data.Line("a", "Alto", "g", tuple(alto)),
        music_data.Line("b", "Soprano", "h", tuple(alto)),
    ]
    first, second, other_piece = music.features_of(lines)
    assert not first[music.HEARD].any() and not other_piece[music.HEARD].any()
    np.testing.assert_array_equal(second[music.HEARD], music_data.voice_context(alto, [soprano]))
    up = music.transposed(second, 2)
    np.testing.assert_array_equal(up[0], music_data.transpose(second[0], 2))
    np.testing.assert_array_equal(up[music.HEARD_PITCHES], music_data.transpose(second[music.HEARD_PITCHES], 2))
    np.testing.assert_array_equal(up[1], second[1])


def test_bar_positions_count_24ths_and_restart_with_each_tune():
    tokens = music_data.encode([(None, 1.0), (60, 1.5), (62, 1 / 3)], 3.0) + music_data.encode([(60, 0.5)], 4.0)
    positions = music_data.bar_positions(tokens)
    assert positions.tolist() == [0, 0, 24, 24, 60, 60, 68, 68, 0, 0, 12, 12]


def test_split_is_by_group_so_a_tune_never_straddles_splits():
    lines = [
        music_data.Line(f"piece{i}", part, f"group{i % 30}", (2, 3)) for i in range(300) for part in ("Soprano", "Bass")
    ]
    splits = music_data.split_lines(lines)
    groups = {name: {line.group for line in split} for name, split in splits.items()}
    assert not groups["train"] & groups["test"] and not groups["train"] & groups["valid"]
    assert all(groups.values())
    alike = music_data.melody_group([(60, 1.0), (62, 1.0), (62, 2.0), (64, 1.0)])
    assert alike == music_data.melody_group([(72, 0.5), (74, 1.0), (76, 4.0)]) == "2 2"


def test_folk_abc_tunes_become_lines(tmp_path):
    abc = tmp_path / "two.abc"
    abc.write_text(
        "X:1\nT:one\nM:3/4\nL:1/8\nK:G\nGABc d2|e2 d2 B2|G4 z2|\n\n"
        "X:2\nT:two\nM:6/8\nL:1/8\nK:D\nDFA dAF|GBd gdB|A3 A2z|\n"
    )
    lines = music_data.parse_abc([str(abc)])
    assert [line.piece for line in lines] == ["essenFolksong/two.abc#0", "essenFolksong/two.abc#1"]
    bar_length, events = music_data.decode(lines[1].tokens)
    assert bar_length == 3.0 and events[0] == (62, 0.5)


# ----------------------------------------------------------- n-gram baseline


def test_kneser_ney_is_a_distribution_and_learns():
    from zoo.audio.music import KneserNey

    rng = np.random.default_rng(0)
    lines = [music_data.encode(melody(int(s), 16), 4.0) for s in rng.integers(0, 5, 40)]
    model = KneserNey(lines, max_order=4)
    context = lines[0][:5]
    for order in (1, 2, 4):
        total = sum(
            math.exp(model.log_likelihoods(context + [token], order, 0.75)[-1])
            for token in range(music_data.VOCAB_SIZE)
        )
        assert total == pytest.approx(1.0, abs=1e-9)
    uniform = math.log(music_data.VOCAB_SIZE)
    assert model.nll(lines[:5], 4, 0.75) < model.nll(lines[:5], 1, 0.75) < uniform


# ---------------------------------------------------------------- copy check


def test_longest_shared_run_finds_transposed_copies_and_not_across_lines():
    from zoo.audio.music import longest_shared_runs

    line_a, line_b = melody(1, 20), melody(2, 20)
    lines = [
        music_data.Line("a", "p", "a", tuple(music_data.encode(line_a, 4.0))),
        music_data.Line("b", "p", "b", tuple(music_data.encode(line_b, 4.0))),
    ]
    copied = [(p + 2, d) for p, d in line_a[3:10]]  # 7 events, a whole tone up
    straddling = line_a[-4:] + line_b[:4]  # 4 + 4 events that meet only across the line boundary
    samples = [music_data.encode(e, 4.0)[1:-1] for e in ([(30, 8.0)] + copied + [(100, 8.0)], straddling)]
    assert longest_shared_runs(samples, lines, transpose=6) == [7, 4]
    beyond = longest_shared_runs(samples, lines, transpose=1)  # +2 is beyond this augmentation
    assert beyond[0] < 7 and beyond[1] == 4


# ----------------------------------------------------------------- sampling


def test_generator_is_seeded_follows_the_grammar_and_fills_the_bars(tiny_weights):
    from zoo.audio import music
    from zoo.harness import load_model

    generator = music.Generator(load_model(tiny_weights))
    prefix = music.default_prefix(3.0)
    songs = generator.sample(prefix, 4, [7, 7, 8], temperature=1.5, top_k=20)
    again = generator.sample(prefix, 4, [7], temperature=1.5, top_k=20)[0]
    assert songs[0] == songs[1] == again and songs[2] != songs[0]
    for song in songs:
        assert all(music_data.is_pitch(t) for t in song[::2]) and all(music_data.is_duration(t) for t in song[1::2])
        bar_length, events = music_data.decode(prefix + song)
        total = sum(d for _, d in events)
        assert 4 * 3.0 <= total < 4 * 3.0 + 8.0


# ---------------------------------------------------------------- rendering


@pytest.mark.parametrize("use_fluidsynth", [True, False], ids=["fluidsynth", "numpy"])
def test_audio_rendering_fluidsynth_and_numpy_fallback(tmp_path, use_fluidsynth):
    if use_fluidsynth and not music_data.fluidsynth_available():
        pytest.skip("fluidsynth or the General MIDI soundfont is not installed")
    events = [(60, 1.0), (None, 1.0), (67, 2.0)]  # 4 beats: 2.5 s at 96 bpm
    sample_rate, samples, renderer = music_data.render_audio(events, 4.0, tempo=96, use_fluidsynth=use_fluidsynth)
    assert renderer == ("fluidsynth" if use_fluidsynth else "numpy synthesiser")
    assert samples.dtype == np.int16 and 2.4 < len(samples) / sample_rate < 8.0  # fluidsynth adds the reverb tail
    assert np.abs(samples).max() > 1000  # sound, not silence
    music_data.write_wav(tmp_path / "a.wav", sample_rate, samples)
    with wave.open(str(tmp_path / "a.wav")) as audio:
        assert audio.getframerate() == sample_rate and audio.getnframes() == len(samples)
    assert np.array_equal(music_data.read_wav(tmp_path / "a.wav")[1], samples)
    assert list(tmp_path.iterdir()) == [tmp_path / "a.wav"]  # the renderer's own files are gone


# -------------------------------------------------------------------- demo


def test_demo_writes_midi_wav_and_piano_roll_and_same_seed_same_song(zoo, tiny_weights, tmp_path, midi_folder):
    def song(seed: int, name: str, *more):
        return zoo(
            "demo",
            "music",
            "--weights",
            tiny_weights,
            "--bars",
            4,
            "--seed",
            seed,
            "--top-k",
            10,
            "-o",
            tmp_path / name,
            *more,
        )

    first = song(5, "a.mid", "--json")
    assert first.code == 0, first.err
    result = json.loads(first.out)[0]
    for key in ("output", "wav", "png"):
        assert Path(result[key]).stat().st_size > 100
    assert (tmp_path / "a.png").read_bytes()[:4] == b"\x89PNG"
    assert song(5, "b.mid").code == 0
    assert (tmp_path / "a.mid").read_bytes() == (tmp_path / "b.mid").read_bytes()
    assert song(6, "c.mid").code == 0
    assert (tmp_path / "c.mid").read_bytes() != (tmp_path / "a.mid").read_bytes()
    primed = zoo(
        "demo",
        "music",
        "--weights",
        tiny_weights,
        "--primer",
        midi_folder / "tune0.mid",
        "--bars",
        2,
        "-o",
        tmp_path / "primed.mid",
        "--json",
    )
    assert primed.code == 0, primed.err
    bar_length, events = music_data.read_midi(tmp_path / "primed.mid")
    assert events[0][:5] == melody(0)[:5]  # the song starts with the primer
    again = zoo("demo", "music", "--weights", tiny_weights, "-o", tmp_path / "a.mid")
    assert_one_line_error(again, "a.mid", "already exists")


# A tune with no two equal notes in a row: pYIN hears pitch, not onsets, so repeated notes would merge.
PLAYED_TUNE = [(67, 1.0), (69, 1.0), (71, 2.0), (72, 1.0), (71, 0.5), (69, 0.5), (67, 1.0), (64, 2.0), (62, 1.0)]


@pytest.fixture(scope="module")
def played_tune(tmp_path_factory) -> Path:
    """PLAYED_TUNE rendered by fluidsynth's General MIDI piano into a WAV file, as a user would play it."""
    if not music_data.fluidsynth_available():
        pytest.skip("fluidsynth or the General MIDI soundfont is not installed")
    sample_rate, samples, renderer = music_data.render_audio(PLAYED_TUNE, 4.0, tempo=96)
    path = tmp_path_factory.mktemp("played") / "tune.wav"
    music_data.write_wav(path, sample_rate, samples)
    return path


def test_a_played_melody_is_transcribed_back_to_its_notes(played_tune):
    bar_length, events = music_data.read_primer(played_tune)
    assert bar_length == 4.0
    notes = [(pitch, duration) for pitch, duration in events if pitch is not None]
    # The last note rings on in the piano's decay and reverb (longer, sometimes heard twice): its
    # length is the recording's, not the score's.
    assert notes[: len(PLAYED_TUNE) - 1] == PLAYED_TUNE[:-1]
    assert {pitch for pitch, _ in notes[len(PLAYED_TUNE) - 1 :]} == {PLAYED_TUNE[-1][0]}


def test_a_low_hum_moves_up_whole_octaves_to_where_melodies_lie():
    from zoo.data import audio

    seconds = np.arange(int(0.5 * audio.MELODY_RATE)) / audio.MELODY_RATE
    hum = np.concatenate([0.3 * np.sin(2 * np.pi * hz * seconds) for hz in (130.81, 146.83, 164.81)])  # C3 D3 E3
    assert [pitch for pitch, _ in music_data.transcribe(hum.astype(np.float32))] == [60, 62, 64]


def test_demo_continues_a_played_melody(zoo, tiny_weights, played_tune, tmp_path):
    result = zoo(
        "demo",
        "music",
        "--weights",
        tiny_weights,
        "--primer",
        played_tune,
        "--bars",
        2,
        "-o",
        tmp_path / "more.mid",
        "--json",
    )
    assert result.code == 0, result.err
    assert json.loads(result.out)[0]["primer_events"] == len(music_data.read_primer(played_tune)[1])
    _, events = music_data.read_midi(tmp_path / "more.mid")
    assert [pitch for pitch, _ in events[0][:4]] == [67, 69, 71, 72]  # the song starts with the tune played


def test_a_recording_without_a_melody_is_one_line_exit_2(zoo, tiny_weights, tmp_path):
    noise = (np.random.default_rng(0).normal(0, 0.3, 22050) * 32767 / 2).astype(np.int16)
    music_data.write_wav(tmp_path / "noise.wav", 22050, noise)
    result = zoo(
        "demo", "music", "--weights", tiny_weights, "--primer", tmp_path / "noise.wav", "-o", tmp_path / "song.mid"
    )
    assert_one_line_error(result, "noise.wav", "no melody heard")
    assert not (tmp_path / "song.mid").exists()


def test_python_face_gives_the_song_its_sound_and_piano_roll(tiny_weights, tmp_path):
    from PIL import Image

    from zoo import api
    from zoo.errors import BadInput

    composer = api.load("music", weights=tiny_weights, bars=2)
    song = composer(seed=3)
    sample_rate, samples = song.audio
    assert len(samples) / sample_rate >= song.seconds and np.abs(samples).max() > 0
    assert isinstance(song.piano_roll, Image.Image) and song.piano_roll.width > 100
    bar_length, events = music_data.decode(song.tokens)
    assert len(events) == song.events and sum(d for _, d in events) >= 2 * bar_length
    assert composer(seed=3).tokens == song.tokens and composer(seed=4, bars=3).bars == 3
    assert song.to_dict()["output"] is None and "tokens" not in song.to_dict()
    with pytest.raises(BadInput, match="takes no input"):
        composer("tune.mid")
    (tmp_path / "taken.png").write_bytes(b"keep me")
    with pytest.raises(BadInput, match="taken.png: already exists"):
        song.save(tmp_path / "taken.mid")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken.png"]  # nothing written: all or nothing
    song.save(tmp_path / "song.mid")
    assert (song.output, song.wav, song.png) == tuple(str(tmp_path / f"song.{x}") for x in ("mid", "wav", "png"))
    assert music_data.read_wav(tmp_path / "song.wav")[1].shape == samples.shape
    written = music_data.read_midi(tmp_path / "song.mid")[1][0]  # MIDI rounds triplets: compare the notes played
    assert {p for p, _ in written} - {None} == {p for p, _ in events} - {None}


def test_demo_corpus_picks_that_corpus_shipped_model(zoo, tmp_path):
    songs = {}
    for corpus in music_data.CORPORA:
        result = zoo("demo", "music", "--corpus", corpus, "--bars", 2, "-o", tmp_path / f"{corpus}.mid")
        assert result.code == 0, result.err
        songs[corpus] = (tmp_path / f"{corpus}.mid").read_bytes()
    assert songs["chorales"] != songs["folk"]  # same seed, different weights


@pytest.fixture(scope="module")
def bad_midis(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    files = {
        "corrupt": b"MThd\x00\x00\x00\x06\x00\x01garbage" * 3,
        "empty": smf([(0, [0xFF, 0x51, 3, 0x07, 0xA1, 0x20])]),  # a tempo, no notes
        "drums": smf([(0, [0x99, 36, 100]), (480, [0x89, 36, 0]), (0, [0x99, 38, 100]), (480, [0x89, 38, 0])]),
    }
    for name, content in files.items():
        (folder / f"{name}.mid").write_bytes(content)
    music_data.write_midi(melody(3, notes=40), 4.0, folder / "long.mid", tempo=100)  # 81 tokens > 64
    return {name: folder / f"{name}.mid" for name in [*files, "long"]}


@pytest.mark.parametrize(
    "primer, options, output, fragments",
    [
        ("corrupt", [], "song.mid", ["corrupt.mid", "not a readable MIDI file"]),
        ("empty", [], "song.mid", ["empty.mid", "no notes"]),
        ("drums", [], "song.mid", ["drums.mid", "drums only"]),
        ("long", [], "song.mid", ["long.mid", "longer than the model's context of 64 tokens"]),
        (None, ["--temperature", "-0.5"], "song.mid", ["--temperature -0.5", "positive"]),
        (None, ["--top-k", "-1"], "song.mid", ["--top-k -1"]),
        (None, [], "song.wav", ["song.wav", ".mid"]),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    zoo, tiny_weights, bad_midis, tmp_path, primer, options, output, fragments
):
    primer_option = ["--primer", bad_midis[primer]] if primer else []
    result = zoo("demo", "music", "--weights", tiny_weights, *primer_option, *options, "-o", tmp_path / output)
    assert_one_line_error(result, *fragments)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------- train / evaluate


def test_train_then_evaluate_on_a_midi_folder(zoo, midi_folder, tmp_path):
    trained = zoo("train", "music", "--data", midi_folder, "--epochs", 1, "--out", tmp_path / "run")
    assert trained.code == 0, trained.err
    for name in ("best.keras", "log.csv", "metrics.json", "config.json"):
        assert (tmp_path / "run" / name).exists()
    result = zoo("evaluate", "music", "--weights", tmp_path / "run", "--data", midi_folder, "--samples", 2, "--json")
    assert result.code == 0, result.err
    metrics = json.loads(result.out)
    assert metrics["perplexity"] == pytest.approx(math.exp(metrics["nll"]), rel=1e-3)
    assert 1 < metrics["perplexity"] < music_data.VOCAB_SIZE * 2
    assert metrics["baseline"]["perplexity"] > 1 and "Kneser-Ney" in metrics["baseline"]["name"]
    for scored in (metrics, metrics["baseline"]):
        assert set(scored["nll_by_kind"]) == {"pitch_or_rest", "duration"}
        assert set(scored["nll_by_part"]) == {"first", "below"}  # the folder's files have one part each
        assert scored["nll_by_part"]["first"] == pytest.approx(scored["nll"], abs=1e-3)
    assert len(metrics["copy_check"]["longest_shared_run"]["all"]) == 2


def test_per_token_scores_follow_the_lines_in_order_whatever_the_batching(tiny_weights):
    """Lines longer than the context span several rows: scoring them together or one by one agrees."""
    from zoo import harness
    from zoo.audio import music

    model = harness.load_model(tiny_weights)
    lines = [
        music_data.Line(f"t{i}", 0, f"g{i}", tuple(music_data.encode(melody(i, notes=20 + 30 * i), 4.0)))
        for i in range(3)
    ]
    together = music.model_log_likelihoods(model, lines, batch_size=2)
    one_by_one = np.concatenate([music.model_log_likelihoods(model, [line]) for line in lines])
    assert len(together) == sum(len(line.tokens) - 1 for line in lines) and max(len(line.tokens) for line in lines) > 64
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    by_kind = music.nll_by_kind(together, lines)
    targets = np.concatenate([line.tokens[1:] for line in lines])
    assert by_kind["duration"] == pytest.approx(-together[targets >= music_data.DURATION0].mean(), abs=1e-4)
    assert music.model_nll(model, lines) == pytest.approx(-together.mean())


def test_init_copies_every_layer_of_the_same_name(tiny_weights):
    from zoo import harness
    from zoo.audio import music

    model = music.build_model(music.Config(context=64, embedding=8, units=16, layers=1))
    donor = harness.load_model(tiny_weights)
    assert set(music.start_from(model, donor, str(tiny_weights))) >= {"embedding", "lstm0", "logits", "voices_in"}
    for mine, theirs in zip(model.get_weights(), donor.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


@pytest.mark.parametrize(
    "init, fragments",
    [
        ("nosuch.keras", ["nosuch.keras"]),
        ("tiny", ["layer embedding", "use the preset"]),  # widths 8 and 16 against the quick preset's 64 and 128
        ("upscale", ["an upscale model, not a music one"]),
    ],
)
def test_bad_init_is_one_line_exit_2_before_a_run_starts(zoo, tiny_weights, midi_folder, tmp_path, init, fragments):
    source = {"tiny": tiny_weights, "upscale": ROOT / "zoo/weights/upscale_x2.keras"}.get(init, init)
    result = zoo("train", "music", "--data", midi_folder, "--init", source, "--out", tmp_path / "run")
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "run").exists()


def test_evaluate_rejects_a_folder_without_midi(zoo, tiny_weights, tmp_path):
    assert_one_line_error(
        zoo("evaluate", "music", "--weights", tiny_weights, "--data", tmp_path), str(tmp_path), "no MIDI file"
    )


@pytest.mark.jax
def test_weights_saved_under_tensorflow_load_and_agree_under_jax(tiny_weights):
    import keras

    from zoo.audio import music
    from zoo.harness import load_model

    alto, soprano = music_data.encode(melody(4, 40), 4.0), music_data.encode(melody(5, 40), 4.0)
    inputs, _, _ = music.pad_rows(music.rows_of(music.line_features(alto, [soprano]), 64)[:1], 64)
    expected = keras.ops.convert_to_numpy(load_model(tiny_weights)(inputs))
    script = (
        "import sys, numpy as np, keras; from zoo.harness import load_model; "
        "m = load_model(sys.argv[1]); t = dict(np.load(sys.argv[2])); "
        "np.save(sys.argv[3], keras.ops.convert_to_numpy(m(t)))"
    )
    np.savez(tiny_weights.with_name("inputs.npz"), **inputs)
    out = tiny_weights.with_name("jax_logits.npy")
    subprocess.run(
        [sys.executable, "-c", script, str(tiny_weights), str(tiny_weights.with_name("inputs.npz")), str(out)],
        check=True,
        cwd=ROOT,
        env={**os.environ, "KERAS_BACKEND": "jax"},
        timeout=120,
    )
    np.testing.assert_allclose(np.load(out), expected, atol=1e-4)


# --------------------------------------------------------------------- slow


@pytest.mark.slow
@pytest.mark.parametrize("corpus", music_data.CORPORA)
def test_split_by_tune_and_shipped_model_beats_the_ngram_by_25_percent(zoo, corpus):
    lines = music_data.corpus_lines(corpus)
    splits = music_data.split_lines(lines)
    assert not {line.group for line in splits["train"]} & {line.group for line in splits["test"] + splits["valid"]}
    result = zoo("evaluate", "music", "--corpus", corpus, "--json")
    assert result.code == 0, result.err
    metrics = json.loads(result.out)
    assert metrics["copy_check"]["longest_shared_run"]["max"] < 12
    assert metrics["perplexity"] <= 0.75 * metrics["baseline"]["perplexity"]


@pytest.mark.slow
def test_chorales_count_350_distinct_settings():
    assert len({line.piece for line in music_data.corpus_lines("chorales")}) == 350  # 371 numbers, 21 named twice


@pytest.mark.slow
@pytest.mark.parametrize("corpus", music_data.CORPORA)  # the tags on the card; folk tokenises for 13 min once
def test_shipped_weights_reproduce_the_model_card(corpus):
    from zoo import registry
    from zoo.audio import music

    spec = registry.get("music")
    entry = spec.entry(corpus)
    assert registry.sha256_of(registry.resolve_weights("music", corpus)) == entry.sha256
    splits = music.load_lines(corpus, None)
    nll = music.model_nll(music.load(None, corpus), splits["test"])
    assert nll == pytest.approx(entry.metrics["nll"], abs=1e-3)
