"""Speech: the audio front end, the digit model's parts, the Python face and every bad input."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

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


def buzz_speakers(folder: Path, seconds: float, pitch_step: float) -> None:
    """Two 'speakers' (ann, bob) of 12 buzzes per digit, each digit its own pitch: data a model learns in seconds."""
    for digit in range(10):
        for speaker in ("ann", "bob"):
            for index in range(12):
                write(folder / f"{digit}_{speaker}_{index}.wav", voiced(seconds, pitch=100 + pitch_step * digit))


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


def test_band_mean_normalisation_cancels_a_fixed_colouring():
    """A microphone's colouring, a fixed offset per band, leaves the normalised log-mels unchanged;
    the window's silent padding stays 0."""
    from zoo.audio import speech

    sound = np.random.default_rng(0).uniform(-0.6, 0.0, (2, speech.FRAMES, audio.MELS, 1)).astype(np.float32)
    sound[:, :20] = -1.0  # silent padding, at the floor
    coloured = sound.copy()
    coloured[:, 20:] += np.linspace(-0.2, 0.2, audio.MELS, dtype=np.float32)[None, None, :, None]
    layer = speech.BandMeanNormalization()
    normalised = np.asarray(layer(sound))
    np.testing.assert_allclose(np.asarray(layer(coloured)), normalised, atol=1e-5)
    assert not normalised[:, :20].any() and np.abs(normalised[:, 20:].mean(axis=1)).max() < 1e-5


def test_an_ensemble_averages_its_members_probabilities_and_reloads(tmp_path):
    from zoo import harness
    from zoo.audio import speech

    members = {
        "plain": speech.build_model(speech.Config(width=8, blocks=2)),
        "normalised": speech.build_model(speech.Config(width=12, blocks=2, band_mean_normalisation=True)),
    }
    log_mels = np.random.default_rng(1).uniform(-80, 0, (3, speech.FRAMES, audio.MELS)).astype(np.float32)
    expected = np.mean([speech.probabilities(m, log_mels) for m in members.values()], axis=0)
    speech.averaged(members).save(tmp_path / "ensemble.keras")
    ensemble = harness.load_model(tmp_path / "ensemble.keras")
    np.testing.assert_allclose(speech.probabilities(ensemble, log_mels), expected, atol=1e-6)
    features, logits = speech.with_features(ensemble)(log_mels)
    assert features.shape == (3, 8 + 12)  # the members' pooled features side by side: the domain check's
    np.testing.assert_allclose(np.asarray(keras_softmax(logits)), expected, atol=1e-6)


def keras_softmax(logits):
    import keras

    return keras.ops.convert_to_numpy(keras.ops.softmax(logits))


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


def test_a_preset_of_the_other_task_is_one_line(zoo):
    assert_one_line_error(zoo("train", "speech", "--preset", "spoken"), "--preset spoken: not a --task digits preset")


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
    from zoo import limits, registry
    from zoo.audio import speech

    buzz_speakers(tmp_path, seconds=0.4, pitch_step=25)
    fake_voices = [audio.Clip(voiced(0.4, pitch=100 + 25 * d), d, f"fake:{v}", v) for d in range(10) for v in range(3)]
    monkeypatch.setattr(audio, "synthetic_clips", lambda voices: fake_voices)
    monkeypatch.setitem(speech.PRESETS, "quick", speech.Config(epochs=1, width=8, blocks=2, batch_size=32))
    result = registry.call("speech", "train", preset="quick", data=tmp_path, out=tmp_path / "run", hold_out="bob")
    assert result["hold_out"] == "bob" and result["held_out_clips"] == 120
    assert (tmp_path / "run" / "model.keras").exists() and 0 <= result["asterisk_accuracy"] <= 1
    fitted = limits.load_beside("speech", tmp_path / "run" / "model.keras")  # zoo.limits, fitted into the run
    assert fitted.check.score == "relative-mahalanobis" and fitted.background is not None


@needs_asterisk
def test_an_ensemble_preset_trains_each_member_in_its_own_folder_and_resumes(tmp_path, monkeypatch):
    from zoo import registry
    from zoo.audio import speech

    buzz_speakers(tmp_path, seconds=0.4, pitch_step=25)
    fake_voices = [audio.Clip(voiced(0.4, pitch=100 + 25 * d), d, f"fake:{v}", v) for d in range(10) for v in range(3)]
    monkeypatch.setattr(audio, "synthetic_clips", lambda voices: fake_voices)
    tiny = speech.Config(epochs=1, width=8, blocks=2, batch_size=32)
    monkeypatch.setitem(speech.PRESETS, "plain", tiny)
    monkeypatch.setitem(speech.PRESETS, "normalised", dataclasses.replace(tiny, band_mean_normalisation=True))
    monkeypatch.setitem(speech.PRESETS, "quick", speech.Ensemble(("plain", "normalised")))
    options = dict(preset="quick", data=tmp_path, out=tmp_path / "run", hold_out="bob")
    result = registry.call("speech", "train", **options)
    run = tmp_path / "run"
    assert all((run / member / "model.keras").exists() for member in ("plain", "normalised"))
    assert result["held_out_clips"] == 120 and (run / "model.keras").exists()
    first = (run / "model.keras").read_bytes()
    assert registry.call("speech", "train", **options, resume=True)["held_out_accuracy"] == result["held_out_accuracy"]
    assert len((run / "model.keras").read_bytes()) == len(first)


@needs_asterisk
def test_the_shipped_model_hears_the_held_out_speaker():
    """Debian's asterisk female speaker, never heard in training: the card's target, 10 of 11."""
    speech = zoo.load("speech")
    clips = audio.asterisk_clips()
    heard = speech([(audio.SAMPLE_RATE, clip.samples) for clip in clips])
    assert sum(h.digit == clip.digit for h, clip in zip(heard, clips)) >= 10


@needs_asterisk
def test_the_shipped_model_says_when_a_sound_is_no_spoken_digit():
    """zoo.limits with the shipped limits beside the weights: FSDD test clips are in domain; the
    asterisk speaker's non-digit prompts and a melody played by fluidsynth are not, with the note."""
    from zoo.data import music

    speech = zoo.load("speech")
    fsdd = audio.fsdd_folder()
    prompts = audio.ASTERISK_DIGITS.parent
    tune = [(60, 0.5), (64, 0.5), (67, 0.5), (72, 0.5), (67, 0.5), (64, 0.5), (60, 1.0)]
    rate, played, _ = music.render_audio(tune, 4.0, 120)
    heard = speech(
        [fsdd / "3_jackson_0.wav", fsdd / "8_george_2.wav", prompts / "goodbye.wav", prompts / "hello.wav"]
        + [(rate, played[int(start * rate) : int((start + 0.8) * rate)]) for start in (0.2, 1.0)]
    )
    assert [h.domain.in_domain for h in heard] == [True, True, False, False, False, False]
    assert heard[0].note is None and "one English digit, 0-9" in heard[2].note and "\n  note: " in heard[2].text
    assert heard[2].to_dict()["domain"] == {
        "in_domain": False,
        "score": heard[2].domain.score,
        "threshold": round(speech.limits.threshold, 4),
    }
    assert speech.limits.check.score == "relative-mahalanobis" and 0 < speech.limits.temperature < 1


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


# ------------------------------------------------------------------ connected digits (digit_strings)


def _tiny_strings_config(**changes):
    from zoo.audio import digit_strings

    return digit_strings.Config(width=8, blocks=2, dense_units=16, gru_units=8, **changes)


@pytest.fixture(scope="module")
def tiny_strings_weights(tmp_path_factory):
    """An untrained, narrow digit-string model: the demo path runs as with the shipped one."""
    from zoo.audio import digit_strings

    path = tmp_path_factory.mktemp("strings") / "tiny_strings.keras"
    digit_strings.build_model(_tiny_strings_config()).save(path)
    return path


def _buzz_voices(speakers=("ann", "bob")) -> list[audio.Clip]:
    """A digit is a buzz at its own pitch, 0.3 s: strings a tiny model can learn in a few steps."""
    return [audio.Clip(voiced(0.3, pitch=100 + 30 * d), d, s, 0) for s in speakers for d in range(10)]


def test_strings_are_joined_with_pauses_overlaps_and_silence_around():
    from zoo.audio import digit_strings

    rate = audio.SAMPLE_RATE
    pieces = [np.ones(800, np.float32), 2 * np.ones(800, np.float32), 3 * np.ones(400, np.float32)]
    joined = digit_strings.join(pieces, [0.05, -0.01], lead=0.1, tail=0.2)
    # 0.1 s of silence, 800 ones, 0.05 s of silence, 800 twos whose last 80 overlap the threes, 0.2 s of silence
    assert len(joined) == 800 + 800 + 400 + 800 - 80 + 400 + 1600
    assert not joined[:800].any() and (joined[800:1600] == 1).all() and not joined[1600:2000].any()
    assert (joined[2000:2720] == 2).all() and (joined[2720:2800] == 5).all() and (joined[2800:3120] == 3).all()
    assert not joined[-int(0.2 * rate) :].any()


def test_made_strings_hold_3_to_10_digits_of_one_voice():
    from zoo.audio import digit_strings

    config = _tiny_strings_config()
    made = digit_strings.made_strings(_buzz_voices(), 20, seed=0, config=config, run_together=True)
    assert {len(text) for _, text in made} <= set(range(3, 11)) and len({text for _, text in made}) == 20
    samples, text = made[0]
    # run together: 0.3 s per digit, at most 20 ms of pause each, and 0.05-0.4 s of silence either side
    assert 0.3 * len(text) - 0.05 * len(text) < len(samples) / audio.SAMPLE_RATE < 0.32 * len(text) + 0.8


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    from zoo.audio import digit_strings

    blank = digit_strings.BLANK
    path = [blank, 2, 2, blank, 9, blank, 9, 9, 3, blank]  # "2", "9", blank, "9" again, then "3"
    probabilities = np.full((len(path), digit_strings.SYMBOLS), 0.01, np.float32)
    for frame, symbol in enumerate(path):
        probabilities[frame, symbol] = 0.9 - 0.05 * frame
    digits, confidences = digit_strings.greedy_decode(probabilities)
    assert digits == [2, 9, 9, 3]
    np.testing.assert_allclose(confidences, [0.85, 0.7, 0.6, 0.5], atol=1e-6)  # each run's best frame
    assert digit_strings.greedy_decode(np.eye(digit_strings.SYMBOLS)[[blank] * 5]) == ([], [])


def test_digit_error_rate_counts_edits_over_reference_digits():
    from zoo.audio import digit_strings

    assert digit_strings.edit_distance("29340", "2934") == 1
    assert digit_strings.edit_distance("29340", "293340") == 1
    assert digit_strings.edit_distance("123", "321") == 2
    assert digit_strings.digit_error_rate(["29340", "123"], ["2934", "321"]) == 3 / 8


def test_training_batches_are_padded_with_silence_and_pack_their_targets():
    from zoo.audio import digit_strings

    config = _tiny_strings_config(batch_size=4)
    batches = digit_strings.StringBatches(_buzz_voices(("ann",)), _buzz_voices(("fake:1", "fake:2")), config, seed=0)
    log_mels, packed = batches[0]
    assert log_mels.shape[0] == 4 and log_mels.shape[2] == audio.MELS and log_mels.min() >= -audio.TOP_DB
    lengths = packed[:, 1]
    assert len(set(lengths)) == 1 and 3 <= lengths[0] <= 10  # one string length per batch
    assert packed[:, 0].max() == -(-log_mels.shape[1] // digit_strings.TIME_STRIDE)  # the longest fills it
    assert (packed[:, 2 : 2 + lengths[0]] <= 9).all() and not packed[:, 2 + lengths[0] :].any()
    again, _ = batches[0]
    assert np.array_equal(again, log_mels)  # a function of (seed, epoch, index) alone


def test_whole_spoken_strings_fill_a_batch_with_their_own_digits():
    from zoo.audio import digit_strings

    config = _tiny_strings_config(batch_size=4, real_probability=0, spoken_probability=1)
    spoken = [
        (np.concatenate([voiced(0.3, pitch=100 + 30 * int(d)) for d in digits]), digits, "fake:1")
        for digits in ("123", "4567", "89012", "345678", "9012345", "67890123", "456789012", "3456789012")
    ]
    batches = digit_strings.StringBatches([], _buzz_voices(("fake:1",)), config, seed=0, spoken=spoken)
    _, packed = batches[0]
    length = packed[0, 1]
    [wanted] = [digits for _, digits, _ in spoken if len(digits) == length]
    assert all("".join(map(str, row[2 : 2 + length])) == wanted for row in packed)


@needs_espeak
def test_spoken_strings_are_one_per_length_and_voice_and_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("ZOO_CACHE", str(tmp_path))
    two_voices = [("espeak-ng", "en-us", "150", "50"), ("espeak-ng", "en-gb-scotland+f2", "170", "40")]
    monkeypatch.setattr(audio, "voice_settings", lambda count, seed: two_voices)
    spoken = audio.spoken_strings(2)
    assert [len(digits) for _, digits, _ in spoken] == [*range(3, 11)] * 2
    assert {voice for _, _, voice in spoken} == {":".join(v) for v in two_voices}
    seconds = [len(samples) / audio.SAMPLE_RATE for samples, _, _ in spoken[:8]]
    assert 0.6 < seconds[0] < seconds[-1] < 8  # ten words take longer than three
    assert list(tmp_path.glob("speech/strings-*.npz"))
    assert all(np.array_equal(a, b) for (a, _, _), (b, _, _) in zip(spoken, audio.spoken_strings(2)))


def test_the_ctc_loss_falls_on_a_tiny_batch():
    import keras

    from zoo.audio import digit_strings

    keras.utils.set_random_seed(0)
    config = _tiny_strings_config(
        batch_size=8, real_probability=1, noise_probability=0, reverb_probability=0, time_masks=0, frequency_masks=0
    )
    log_mels, packed = digit_strings.StringBatches(_buzz_voices(), [], config, seed=0)[0]
    model = digit_strings.build_model(config)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=digit_strings.ctc_loss)
    losses = [float(model.train_on_batch(log_mels, packed)) for _ in range(12)]
    assert np.isfinite(losses).all() and losses[-1] < 0.7 * losses[0], losses


def test_a_digit_string_model_reads_through_the_demo_and_python_alike(zoo, tiny_strings_weights, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    samples = np.concatenate([voiced(0.3, pitch=100 + 30 * d) for d in (2, 9, 3)] + [np.zeros(800, np.float32)])
    write(tmp_path / "number.wav", samples)
    printed = zoo("demo", "speech", "number.wav", "--weights", tiny_strings_weights, "--json")
    assert printed.code == 0, printed.err
    [record] = json.loads(printed.out)
    assert record["output"] == "number_logmel.png" and (tmp_path / "number_logmel.png").stat().st_size > 0
    assert set(record["digits"]) <= set("0123456789") and len(record["digit_confidences"]) == len(record["digits"])
    assert record["words"] == " ".join(audio.DIGIT_WORDS[int(d)] for d in record["digits"])
    heard = api.load("speech", weights=tiny_strings_weights)("number.wav")
    heard.save("number_logmel.png", force=True)
    assert heard.to_dict() == record and heard.picture.size[1] == 4 * audio.MELS


@pytest.mark.parametrize(
    "case, message",
    [
        ("empty", "empty recording"),
        ("too short", "a spoken digit needs at least 0.1 s"),
        ("too long", "a digit string may last at most 20 s"),
    ],
)
def test_bad_recordings_for_the_string_model_are_one_line(
    zoo, tiny_strings_weights, tmp_path, monkeypatch, case, message
):
    monkeypatch.chdir(tmp_path)
    samples = {
        "empty": np.zeros(0, np.float32),
        "too short": np.concatenate([np.zeros(4000), voiced(0.04), np.zeros(4000)]),
        "too long": np.tile(voiced(0.5), 45),
    }[case]
    path = write(tmp_path / "bad.wav", samples)
    assert_one_line_error(zoo("demo", "speech", path, "--weights", tiny_strings_weights), str(path), message)
    assert not list(tmp_path.glob("*.png"))


def test_translate_is_refused_with_the_string_model(zoo, tiny_strings_weights, tmp_path):
    write(tmp_path / "a.wav", voiced(0.5))
    assert_one_line_error(
        zoo("demo", "speech", tmp_path / "a.wav", "--translate", "fr", "--weights", tiny_strings_weights),
        "--translate: the one-digit model's",
    )


needs_tidigits = pytest.mark.skipif(
    not Path("/usr/share/pocketsphinx/test/data/tidigits/dhd.2934z.raw").exists(),
    reason="pocketsphinx-testdata (apt): the one TIDIGITS recording",
)


@needs_tidigits
def test_the_tidigits_recording_reads_as_8khz_speech():
    from zoo.audio import digit_strings

    recording = digit_strings.tidigits()
    assert len(recording) == 38400  # 4.8 s at 8 kHz, 16-bit little-endian
    speech_part = audio.trim(recording)
    assert 1.5 < len(speech_part) / audio.SAMPLE_RATE < 4.8 and digit_strings.TIDIGITS_DIGITS == "29340"


@needs_asterisk
def test_string_training_runs_end_to_end_on_a_small_folder(tmp_path, monkeypatch):
    """`zoo train speech --task strings` through the harness, on buzz 'speakers', in seconds."""
    from zoo import registry
    from zoo.audio import digit_strings

    buzz_speakers(tmp_path, seconds=0.3, pitch_step=30)
    monkeypatch.setattr(audio, "synthetic_clips", lambda voices: _buzz_voices(("fake:1", "fake:2", "fake:3")))
    tiny = _tiny_strings_config(epochs=1, batches_per_epoch=2, batch_size=8, validation_strings=8, test_strings=4)
    monkeypatch.setitem(digit_strings.PRESETS, "quick", tiny)
    result = registry.call(
        "speech", "train", task="strings", preset="quick", data=tmp_path, out=tmp_path / "run", hold_out="bob"
    )
    assert (tmp_path / "run" / "model.keras").exists() and result["hold_out"] == "bob"
    [ann, bob, asterisk] = result["speakers"]
    assert bob["speaker"] == "bob (held out)" and asterisk["strings"] == 4
    assert all(0 <= row[key] for row in (ann, bob, asterisk) for key in ("der", "der_run_together", "baseline_der"))


@pytest.mark.slow
@needs_asterisk
def test_the_shipped_string_model_reads_a_held_out_speakers_strings():
    """The card's target: at most 10% digit errors on strings of george, whom training never heard."""
    from zoo.audio import digit_strings, speech

    model = speech.load("strings")
    config = digit_strings.PRESETS["full"]
    george = [c for c in speech.real_speakers(config) if c.speaker == "george" and c.index in speech.TEST_INDICES]
    made = digit_strings.made_strings(george, 100, 0, config)
    heard = digit_strings.heard_strings(model, [samples for samples, _ in made])
    assert digit_strings.digit_error_rate([text for _, text in made], heard) <= 0.10
