"""Speech: the audio front end, the digit model's parts, the Python face and every bad input."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile

import zoo
from zoo import api
from zoo.data import audio
from zoo.errors import BadInput

from conftest import assert_one_line_error

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt)")
needs_asterisk = pytest.mark.skipif(not audio.ASTERISK_DIGITS.is_dir(), reason="asterisk-core-sounds-en-wav (apt)")


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    """An untrained, narrow model: the front end and every check run as with the shipped one."""
    from zoo.audio import speech

    path = tmp_path_factory.mktemp("speech") / "tiny.keras"
    speech.build_model(speech.Config(width=8, blocks=2)).save(path)
    return path


def voiced(seconds: float, rate: int = audio.SAMPLE_RATE, pitch: float = 140.0) -> np.ndarray:
    """A vowel-like buzz: harmonics of `pitch`, rising and falling in loudness."""
    t = np.arange(int(seconds * rate)) / rate
    buzz = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 12))
    return (0.3 * buzz * np.sin(np.pi * t / seconds)).astype(np.float32)


def write(path, samples, rate=audio.SAMPLE_RATE, **kwargs):
    soundfile.write(str(path), samples, rate, **kwargs)
    return path


# ------------------------------------------------------------------ the front end


@needs_asterisk
def test_a_stereo_48k_file_is_averaged_and_resampled_not_refused(tmp_path):
    seven = audio.read_audio(audio.ASTERISK_DIGITS / "7.wav")
    import librosa

    high = librosa.resample(seven, orig_sr=8000, target_sr=48000)
    path = write(tmp_path / "stereo.wav", np.stack([high, 0.5 * high], axis=1), 48000)
    back = audio.read_audio(path)
    assert abs(len(back) - len(seven)) <= 2
    n = min(len(back), len(seven))
    assert np.corrcoef(back[:n], seven[:n])[0, 1] > 0.98  # the same sound, at 0.75 of the level


@pytest.mark.parametrize("suffix, subtype", [(".flac", "PCM_16"), (".ogg", "VORBIS"), (".mp3", None)])
def test_compressed_formats_read_back(tmp_path, suffix, subtype):
    samples = voiced(0.5, 16000)
    back = audio.read_audio(write(tmp_path / f"clip{suffix}", samples, 16000, subtype=subtype))
    assert abs(len(back) - 4000) < 100 and np.max(np.abs(back)) > 0.1


def test_log_mel_is_loudness_free_and_floored():
    quiet = voiced(0.6)
    features = audio.log_mel(quiet)
    assert features.shape == (1 + len(quiet) // audio.FRAME_HOP, audio.MELS)
    assert features.max() == 0 and features.min() >= -audio.TOP_DB
    np.testing.assert_allclose(audio.log_mel(4 * quiet), features, atol=1e-3)


def test_read_audio_takes_rate_and_samples_pairs():
    pcm = (voiced(0.5, 16000) * 32767).astype(np.int16)
    assert len(audio.read_audio((16000, pcm))) == 4000


def test_fsdd_names_are_parsed_and_other_files_skipped(tmp_path):
    write(tmp_path / "3_alice_7.wav", voiced(0.4))
    write(tmp_path / "notes.wav", voiced(0.4))
    [clip] = audio.folder_clips(tmp_path)
    assert (clip.digit, clip.speaker, clip.index) == (3, "alice", 7)
    with pytest.raises(BadInput, match="no {digit}_{speaker}_{index}.wav recordings of bob"):
        audio.folder_clips(tmp_path, ("bob",))


# ------------------------------------------------------------------ the model's parts


def test_augmentation_keeps_the_window_and_sets_the_snr():
    from zoo.audio import speech

    config = speech.Config(
        speed=0.0, reverb_probability=0, telephone_probability=0, noise_probability=1, snr_db=(10.0, 10.0)
    )
    speech_part = voiced(speech.WINDOW_SECONDS)
    window, warp = speech.augment(speech_part, np.random.default_rng(0), config)
    assert window.shape == (speech.WINDOW,) and 0.9 <= warp <= 1.1
    signal_power = np.mean(speech_part**2)
    snr = 10 * np.log10(signal_power / (np.mean(window**2) - signal_power))
    assert 9 < snr < 11


def test_spec_augment_masks_while_training_only():
    from zoo.audio import speech

    layer = speech.SpecAugment(seed=1)
    ones = np.ones((4, speech.FRAMES, audio.MELS, 1), np.float32)
    assert np.array_equal(np.asarray(layer(ones)), ones)
    masked = np.asarray(layer(ones, training=True))
    assert 0 < (masked == 0).mean() < 0.6
    assert set(np.unique(masked)) <= {0.0, 1.0}


def test_speech_is_trimmed_and_centred():
    from zoo.audio import speech

    padded = np.concatenate([np.zeros(4000, np.float32), voiced(0.5), np.zeros(1000, np.float32)])
    window = speech.speech_window(padded)
    loud = np.flatnonzero(np.abs(window) > 0.01)
    assert window.shape == (speech.WINDOW,) and abs((loud[0] + loud[-1]) / 2 - speech.WINDOW / 2) < 400


# ------------------------------------------------------------------ the Python face and the CLI


def test_predictor_result_is_typed_and_its_record_plain(tiny_weights, tmp_path):
    heard = zoo.load("speech", weights=tiny_weights)(write(tmp_path / "a.wav", voiced(0.5)))
    assert isinstance(heard, api.Result) and 0 <= heard.digit <= 9
    assert abs(sum(heard.probabilities.values()) - 1) < 1e-3 and heard.word == audio.DIGIT_WORDS[heard.digit]
    assert heard.picture.size == (3 * 101, 4 * audio.MELS) and heard.audio[0] == audio.SAMPLE_RATE
    record = heard.to_dict()
    assert "picture" not in record and "audio" not in record and record["output"] is None
    heard.save(tmp_path / "a.png")
    assert heard.output == str(tmp_path / "a.png") and (tmp_path / "a.png").stat().st_size > 0


def test_demo_hears_a_stereo_48k_file(zoo, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path / "stereo.wav", np.stack([voiced(0.5, 48000)] * 2, axis=1), 48000)
    printed = zoo("demo", "speech", path, "--weights", tiny_weights, "--json")
    assert printed.code == 0, printed.err
    [record] = json.loads(printed.out)
    assert record["output"] == "stereo_logmel.png" and (tmp_path / "stereo_logmel.png").exists()


def _bad_files(folder):
    (folder / "text.wav").write_text("not a sound\n")
    return {
        "not audio": (folder / "text.wav", "not an audio file that soundfile or librosa can read"),
        "empty": (write(folder / "empty.wav", np.zeros(0, np.float32)), "empty recording"),
        "silent": (write(folder / "silent.wav", np.zeros(8000, np.float32)), "silent recording"),
        "too short": (
            write(folder / "click.wav", np.concatenate([np.zeros(4000), voiced(0.04), np.zeros(4000)])),
            "a spoken digit needs at least 0.1 s",
        ),
        "too long speech": (write(folder / "speech.wav", voiced(2.5)), "one spoken digit lasts at most 1 s"),
        "too long file": (write(folder / "hour.wav", np.tile(voiced(1.0), 61)), "61.0 s long; at most 60 s"),
    }


@pytest.mark.parametrize("case", ["not audio", "empty", "silent", "too short", "too long speech", "too long file"])
def test_bad_recordings_are_one_line_and_exit_2(zoo, tiny_weights, tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    path, message = _bad_files(tmp_path)[case]
    assert_one_line_error(zoo("demo", "speech", path, "--weights", tiny_weights), str(path), message)
    assert not list(tmp_path.glob("*.png"))  # nothing written


def test_say_must_be_a_digit(zoo):
    assert_one_line_error(zoo("demo", "speech", "--say", "x"), "--say x: choose one of 0, 1, 2")


def test_no_recording_and_nothing_to_say(zoo, tiny_weights):
    assert_one_line_error(zoo("demo", "speech", "--weights", tiny_weights), "give a recording")


def test_missing_espeak_names_the_package(zoo, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert_one_line_error(
        zoo("demo", "speech", "--say", "7", "--weights", tiny_weights),
        "espeak-ng: not installed; sudo apt-get install espeak-ng",
    )


@needs_espeak
def test_espeak_voices_say_a_digit():
    seven = audio.trim(audio.espeak("seven", "en-gb-scotland+f2", 170, 40))
    assert 0.2 < len(seven) / audio.SAMPLE_RATE < 1.0
    assert audio.voice_settings(5, seed=3) == audio.voice_settings(5, seed=3)


@needs_asterisk
def test_training_runs_end_to_end_on_a_small_folder(tmp_path, monkeypatch):
    """Two speakers of buzzes at ten pitches, three synthetic 'voices': the harness path, in seconds."""
    from zoo import registry
    from zoo.audio import speech

    for digit in range(10):
        for speaker in ("ann", "bob"):
            for index in range(12):
                write(tmp_path / f"{digit}_{speaker}_{index}.wav", voiced(0.4, pitch=100 + 25 * digit))
    fake_voices = [audio.Clip(voiced(0.4, pitch=100 + 25 * d), d, f"fake:{v}", v) for d in range(10) for v in range(3)]
    monkeypatch.setattr(audio, "synthetic_clips", lambda voices: fake_voices)
    monkeypatch.setitem(speech.PRESETS, "quick", speech.Config(epochs=1, width=8, blocks=2, batch_size=32))
    result = registry.call("speech", "train", preset="quick", data=tmp_path, out=tmp_path / "run", hold_out="bob")
    assert result["hold_out"] == "bob" and result["held_out_clips"] == 120
    assert (tmp_path / "run" / "model.keras").exists() and 0 <= result["asterisk_accuracy"] <= 1


@needs_asterisk
def test_the_shipped_model_hears_the_held_out_speaker():
    """Debian's asterisk female speaker, never heard in training: the card's target, 10 of 11."""
    speech = zoo.load("speech")
    clips = audio.asterisk_clips()
    heard = speech([(audio.SAMPLE_RATE, clip.samples) for clip in clips])
    assert sum(h.digit == clip.digit for h, clip in zip(heard, clips)) >= 10


@needs_espeak
def test_say_is_a_round_trip_through_espeak(zoo):
    printed = zoo("demo", "speech", "--say", "7", "--json")
    assert printed.code == 0, printed.err
    [record] = json.loads(printed.out)
    assert record["digit"] == 7 and record["input"] == "espeak-ng saying seven"


@needs_espeak
def test_translate_speaks_the_heard_digit_in_another_language(zoo, tiny_weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "a.wav", voiced(0.5))
    printed = zoo("demo", "speech", "a.wav", "--translate", "fr", "--weights", tiny_weights, "--json")
    assert printed.code == 0, printed.err
    [record] = json.loads(printed.out)
    from zoo.audio.speech import TRANSLATIONS

    assert record["translation"] == f"fr: {TRANSLATIONS['fr'][record['digit']]}" and record["output"] == "a_fr.wav"
    assert len(audio.trim(audio.read_audio(tmp_path / "a_fr.wav"))) > 0.1 * audio.SAMPLE_RATE


def test_an_unknown_language_is_one_line(zoo, tmp_path):
    write(tmp_path / "a.wav", voiced(0.5))
    assert_one_line_error(
        zoo("demo", "speech", tmp_path / "a.wav", "--translate", "xx"), "--translate xx: choose one of de, es, fr"
    )


def test_a_played_melody_is_transcribed_note_by_note():
    """The music app's `--primer hum.wav` front end: pitches exact, durations within 60 ms."""
    rate = audio.MELODY_RATE

    def note(midi, seconds):
        t = np.arange(int(seconds * rate)) / rate
        fade = np.minimum(1, np.minimum(t, seconds - t) / 0.02)
        frequency = 440 * 2 ** ((midi - 69) / 12)
        return (0.3 * fade * sum(np.sin(2 * np.pi * frequency * k * t) / k for k in range(1, 5))).astype(np.float32)

    tune = [(60, 0.3), (62, 0.3), (64, 0.3), (None, 0.2), (67, 0.6), (65, 0.15), (64, 0.3)]
    played = np.concatenate([note(p, s) if p else np.zeros(int(s * rate), np.float32) for p, s in tune])
    heard = audio.melody(played)
    assert [p for p, _ in heard] == [p for p, _ in tune]
    assert all(abs(a - b) < 0.06 for (_, a), (_, b) in zip(heard, tune))
