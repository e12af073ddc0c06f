"""Captioning: generated data, tokenizer, metrics, beam search, CLI and bad input.

Fast tests use a tiny untrained model saved to a temp folder (its captions are
noise, which is all the CLI plumbing needs) and small generated data. The
slow test trains the quick preset and checks the issue's BLEU-4 targets.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from zoo.data import captions as caption_data
from zoo.data.captions import Tokenizer
from zoo.text import beam_search, metrics

from conftest import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
PAIR = re.compile(r"(red|green|blue|yellow|purple) (circle|square|triangle|diamond)")


# ------------------------------------------------------------------ data


def test_scene_splits_hold_out_colour_shape_pairs():
    _, train = caption_data.scenes("train", 300)
    _, unseen = caption_data.scenes("unseen", 100)
    train_pairs = {m for refs in train for m in PAIR.findall(refs[0])}
    assert not train_pairs & set(caption_data.HELD_OUT)
    assert len(train_pairs) == len(caption_data.COLOURS) * len(caption_data.SHAPES) - len(caption_data.HELD_OUT)
    assert all(set(PAIR.findall(refs[0])) & set(caption_data.HELD_OUT) for refs in unseen)
    # Every held-out colour and shape still occurs in training, with other partners.
    assert {c for c, _ in caption_data.HELD_OUT} <= {c for c, _ in train_pairs}
    assert {s for _, s in caption_data.HELD_OUT} <= {s for _, s in train_pairs}


def test_scenes_are_reproducible_and_distinct_per_split():
    small, small_refs = caption_data.scenes("test", 5)
    large, large_refs = caption_data.scenes("test", 10)
    assert np.array_equal(small, large[:5]) and small_refs == large_refs[:5]
    other, _ = caption_data.scenes("val", 5)
    assert not np.array_equal(small, other)
    assert all(len(refs) == 5 for refs in large_refs)


def test_tokenizer_round_trips(tmp_path):
    _, references = caption_data.scenes("train", 50)
    captions = [c for refs in references for c in refs]
    tokenizer = Tokenizer.fit(captions)
    for caption in captions[:20]:
        assert tokenizer.decode(tokenizer.encode(caption)) == caption
    assert tokenizer.decode(tokenizer.encode("A  Small, RED circle!", 10)) == "a small red circle"
    assert tokenizer.decode(tokenizer.encode("a zebra")) == "a <unk>"
    loaded = Tokenizer.load(tokenizer.save(tmp_path / "vocab.txt"))
    assert loaded.words == tokenizer.words


# --------------------------------------------------------------- metrics


def test_bleu_matches_nltk_documentation_example():
    # nltk.translate.bleu_score.corpus_bleu's docstring example: 0.5920778868801042.
    hyp1 = "It is a guide to action which ensures that the military always obeys the commands of the party"
    refs1 = [
        "It is a guide to action that ensures that the military will forever heed Party commands",
        "It is the guiding principle which guarantees the military forces always being under the command of the Party",
        "It is the practical guide for the army always to heed the directions of the party",
    ]
    hyp2 = "he read the book because he was interested in world history"
    refs2 = ["he was interested in world history because he read the book"]
    assert metrics.corpus_bleu([hyp1, hyp2], [refs1, refs2])["bleu_4"] == pytest.approx(0.5920778868801042, abs=1e-12)


CANDIDATES = [
    "a small red circle to the left of a large blue square",
    "there is a large green diamond",
    "a small purple circle above a small purple diamond",
    "a large blue square",
    "red circle",
]
REFERENCES = [
    [
        "a small red circle to the left of a large blue square",
        "a large blue square to the right of a small red circle",
        "there is a small red circle to the left of a large blue square",
    ],
    ["a large green diamond", "there is one large green diamond", "a single large green diamond"],
    ["a small purple circle above a small yellow diamond", "a small yellow diamond below a small purple circle"],
    ["a large blue triangle on its own", "there is a large blue triangle"],
    ["a small red circle", "there is a small red circle"],
]


def test_bleu_and_cider_match_coco_caption():
    # pycocoevalcap 1.2 on these captions: Bleu(4) and Cider() (which is CIDEr-D).
    bleu = metrics.corpus_bleu(CANDIDATES, REFERENCES)
    expected = [0.8321583945180183, 0.7948930992831377, 0.7594632947989629, 0.7312455928096951]
    assert [bleu[f"bleu_{n}"] for n in range(1, 5)] == pytest.approx(expected, abs=1e-8)
    assert metrics.cider_d(CANDIDATES, REFERENCES) == pytest.approx(4.548572565048102, abs=1e-9)


def test_metrics_reward_exact_captions_only():
    exact = metrics.caption_scores([refs[0] for refs in REFERENCES], REFERENCES)
    assert exact["bleu_4"] == 1.0
    wrong = metrics.caption_scores(["a large green triangle"] * 5, REFERENCES)
    assert wrong["bleu_4"] < 0.3 and wrong["cider"] < exact["cider"] / 3


# --------------------------------------------------------- model and CLI


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """An untrained tiny captioner saved as a run directory would hold it, plus a few photos."""
    import keras

    from zoo.text import captioning

    folder = tmp_path_factory.mktemp("captioning")
    _, references = caption_data.scenes("train", 200)
    tokenizer = Tokenizer.fit([c for refs in references for c in refs])
    tokenizer.save(folder / "vocab.txt")
    config = captioning.Config(vocab_size=len(tokenizer), embed_dim=32, ff_dim=64, heads=2, decoder_layers=1)
    keras.utils.set_random_seed(0)  # the same untrained weights, and so the same captions, on every run
    model = captioning.build_model(config)
    model.save(folder / "best.keras")
    images, references = caption_data.scenes("test", 3)
    photos = folder / "photos"
    photos.mkdir()
    for i, image in enumerate(images):
        Image.fromarray(image).save(photos / f"scene{i}.png")
    (photos / "captions.txt").write_text(
        "".join(f"scene{i}.png\t{c}\n" for i, refs in enumerate(references) for c in refs)
    )
    return {"dir": folder, "model": model, "tokenizer": tokenizer, "images": images, "photos": photos}


@pytest.mark.slow  # about 40 s of CPU, mostly TensorFlow tracing the training step
def test_training_run_keeps_tokenizer_checkpoints_and_split_scores(tmp_path):
    from zoo.text import captioning

    config = captioning.Config(
        train_images=64,
        val_images=8,
        test_images=4,
        epochs=1,
        batch_size=32,
        warmup_steps=1,
        embed_dim=32,
        ff_dim=64,
        heads=2,
        decoder_layers=1,
    )
    result = captioning.run_training(config, tmp_path / "run")
    run = tmp_path / "run"
    assert {"best.keras", "last.keras", "vocab.txt", "log.csv", "metrics.json", "limits.npz"} <= {
        p.name for p in run.iterdir()
    }
    assert set(json.loads((run / "metrics.json").read_text())) == {"beam", "seen", "unseen"}
    assert result["seen"]["images"] == 4 and 0 <= result["unseen"]["bleu_4"] <= 1
    assert json.loads((run / "config.json").read_text())["vocab_size"] == len(Tokenizer.load(run / "vocab.txt"))


def test_beam_log_probs_are_the_model_probabilities_of_the_captions(tiny):
    from zoo.text import captioning

    model, images = tiny["model"], tiny["images"]
    features = np.asarray(model.get_layer("encoder")(images.astype(np.float32)))
    for beam in (1, 3):
        results = captioning.beam_search(model, images, beam)
        assert len(results) == len(images)
        for i, hypotheses in enumerate(results):
            assert len(hypotheses) == beam
            assert [h.log_prob for h in hypotheses] == sorted((h.log_prob for h in hypotheses), reverse=True)
            for h in hypotheses:
                assert len(h.tokens) <= 14 and h.attention.shape == (len(h.tokens), 36)
                sequence = np.array([[caption_data.START, *h.tokens, caption_data.END]])
                logits, _ = model.get_layer("decoder")([features[i : i + 1], sequence[:, :-1]])
                log_probs = beam_search.log_softmax(np.asarray(logits)[0].astype(np.float64))
                assert h.log_prob == pytest.approx(
                    sum(log_probs[t, sequence[0, t + 1]] for t in range(sequence.shape[1] - 1)), abs=1e-3
                )
    # Batched decoding gives every image the caption it gets alone.
    alone = [captioning.beam_search(model, images[i : i + 1], 3)[0][0].tokens for i in range(len(images))]
    assert alone == [h[0].tokens for h in captioning.beam_search(model, images, 3, batch_size=2)]


def test_demo_prints_caption_beams_and_attention_maps(zoo, tiny, tmp_path):
    photo = tiny["photos"] / "scene0.png"
    result = zoo("demo", "captioning", photo, "--weights", tiny["dir"], "--beam", 2, "--json", "-o", tmp_path / "maps")
    assert result.code == 0, result.err
    [item] = json.loads(result.out)
    assert len(item["beams"]) == 2 and item["beams"][0]["log_prob"] >= item["beams"][1]["log_prob"]
    assert item["caption"] == item["beams"][0]["caption"]
    words = item["caption"].split()
    assert [Path(p).name for p in item["attention_maps"]] == [
        f"scene0_{i:02d}_{w.strip('<>')}.png" for i, w in enumerate(words, 1)
    ]
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == sorted(Path(p).name for p in item["attention_maps"])
    # The tiny model's caption can be empty (it may say <end> at once); every map it drew is full size.
    assert all(Image.open(p).size == (224, 224) for p in item["attention_maps"])
    plain = zoo("demo", "captioning", photo, "--weights", tiny["dir"], "--beam", 2)
    assert plain.code == 0 and plain.out.strip() == item["caption"]
    again = zoo("demo", "captioning", photo, "--weights", tiny["dir"], "--beam", 2, "-o", tmp_path / "maps")
    assert_one_line_error(again, "already exists")


def test_predictor_gives_caption_beams_and_the_maps_it_saves(zoo, tiny, tmp_path):
    import zoo as package
    from zoo import api

    captioner = package.load("captioning", weights=tiny["dir"], beam=2)
    photo = tiny["photos"] / "scene0.png"
    result = captioner(photo)
    printed = json.loads(zoo("demo", "captioning", photo, "--weights", tiny["dir"], "--beam", 2, "--json").out)
    assert [result.to_dict()] == printed and result.attention_maps == [] and result.text == result.caption
    words = [word for _, word in result.attention]
    assert [kind for _, kind, _ in api.shown_fields(result)] == ["text", "table", "images"]
    assert all(image.size == (224, 224) for image, _ in result.attention)
    tokenizer = tiny["tokenizer"]
    assert tokenizer.decode([tokenizer.index[w] for w in words]) == result.caption  # a map per word of the caption
    assert len(captioner(photo, beam=1).beams) == 1 and len(result.beams) == 2  # beam: per call, the loaded default
    result.save(tmp_path / "maps")
    assert result.output == str(tmp_path / "maps") and len(result.attention_maps) == len(words)
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == sorted(Path(p).name for p in result.attention_maps)
    many = captioner([tiny["images"][0], photo])  # an array and a path: the same caption, each named
    assert many[0].caption == many[1].caption == result.caption and many[0].text.startswith("<array>: ")
    with pytest.raises(api.BadInput, match="tokenizer chooses the model"):
        captioner(photo, tokenizer=tiny["dir"] / "vocab.txt")


def test_a_photo_is_outside_what_the_shipped_captioner_has_seen(zoo, tmp_path):
    """The shipped model knows generated scenes: a real photo gets its caption and a note; test scenes
    pass the domain check (fitted for 5% false alarms on validation scenes) nearly always."""
    import zoo as package
    from zoo.data.photos import photo

    Image.fromarray(photo("chelsea")).save(tmp_path / "cat.png")
    result = zoo("demo", "captioning", tmp_path / "cat.png", "--beam", 1)
    assert result.code == 0, result.err
    caption, note = result.out.strip().splitlines()
    assert PAIR.search(caption) and "outside what the model has seen" in note and "--data" in note
    scenes, _ = caption_data.scenes("test", 40, 48)
    results = package.load("captioning", beam=1)(list(scenes))
    assert np.mean([r.domain.in_domain and r.note is None for r in results]) >= 0.85
    assert {"in_domain", "score", "threshold"} == set(results[0].to_dict()["domain"])


def test_evaluate_on_a_caption_folder(zoo, tiny):
    result = zoo("evaluate", "captioning", "--weights", tiny["dir"], "--data", tiny["photos"], "--beam", 1, "--json")
    assert result.code == 0, result.err
    scores = json.loads(result.out)["test"]
    assert scores["images"] == 3 and set(scores) >= {"bleu_1", "bleu_4", "cider"}


@pytest.mark.jax
@pytest.mark.slow  # about 45 s: Keras rebuilds the model symbolically under JAX
def test_weights_load_under_jax(tiny):
    """The .keras file saved under TensorFlow decodes identically under JAX."""
    from zoo.text import captioning

    expected = [h[0].tokens for h in captioning.beam_search(tiny["model"], tiny["images"], 2)]
    script = (
        "import json, sys, numpy as np; from zoo.data import captions as c; from zoo.text import captioning as k;"
        "from zoo.harness import load_model; m = load_model(sys.argv[1]); i, _ = c.scenes('test', 3);"
        "print(json.dumps([h[0].tokens for h in k.beam_search(m, i, 2)]))"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(tiny["dir"] / "best.keras")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == expected


def test_hub_savedmodel_backbone(zoo, tiny, tmp_path):
    """`hub:PATH`: tensorflow-hub resolves a local SavedModel and TFSMLayer runs it as a frozen extractor.

    The weights file holds the captioner from the backbone's features on (Keras's safe mode will
    not load a TFSMLayer), so it loads with safe_mode=True, and evaluate/demo run the backbone
    only when `--backbone hub:...` asks for it.
    """
    import tensorflow as tf

    from zoo.text import captioning

    class TinyFeatures(tf.Module):
        def __init__(self):
            self.kernel = tf.Variable(tf.random.stateless_normal((8, 8, 3, 16), seed=(1, 2)))

        @tf.function(input_signature=[tf.TensorSpec((None, 48, 48, 3), tf.float32)])
        def __call__(self, images):
            return {"feature_map": tf.nn.relu(tf.nn.conv2d(images, self.kernel, strides=8, padding="SAME"))}

    module = TinyFeatures()
    saved = tmp_path / "features"
    tf.saved_model.save(module, str(saved), signatures={"serving_default": module.__call__})
    config = captioning.Config(
        vocab_size=len(tiny["tokenizer"]), embed_dim=32, ff_dim=64, heads=2, decoder_layers=1, backbone=f"hub:{saved}"
    )
    model = captioning.build_model(config)
    assert model.get_layer("encoder").output.shape[1:] == (36, 32)
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "best.keras")
    tiny["tokenizer"].save(run / "vocab.txt")
    photo = tiny["photos"] / "scene0.png"
    result = zoo("demo", "captioning", photo, "--weights", run, "--backbone", f"hub:{saved}", "--json")
    assert result.code == 0, result.err
    expected = captioning.beam_search(model, captioning.HubBackbone(str(saved))(tiny["images"][:1]), 3)
    assert json.loads(result.out)[0]["caption"] == tiny["tokenizer"].decode(expected[0][0].tokens)
    assert_one_line_error(zoo("demo", "captioning", photo, "--weights", run), f"--backbone hub:{saved}")
    assert_one_line_error(
        zoo("demo", "captioning", photo, "--weights", run, "--backbone", f"hub:{tmp_path}/none"), "not a SavedModel"
    )


# ------------------------------------------------------------- bad input


def test_non_image_input_is_a_one_line_error(zoo, tiny, tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a picture")
    assert_one_line_error(zoo("demo", "captioning", text, "--weights", tiny["dir"]), "notes.jpg", "not an image")


def test_unreadable_tokenizer_is_a_one_line_error(zoo, tiny, tmp_path):
    photo = tiny["photos"] / "scene0.png"
    garbage = tmp_path / "vocab.txt"
    garbage.write_bytes(b"\xff\xfe\x00binary")
    assert_one_line_error(
        zoo("demo", "captioning", photo, "--weights", tiny["dir"], "--tokenizer", garbage),
        "vocab.txt",
        "not a readable tokenizer file",
    )
    wrong = tmp_path / "other.txt"
    wrong.write_text("hello\nworld\n")
    assert_one_line_error(
        zoo("demo", "captioning", photo, "--weights", tiny["dir"], "--tokenizer", wrong),
        "other.txt",
        "not a tokenizer file",
    )
    mismatched = Tokenizer(["just", "three", "words"]).save(tmp_path / "small.txt")
    assert_one_line_error(
        zoo("demo", "captioning", photo, "--weights", tiny["dir"], "--tokenizer", mismatched), "small.txt", "7 tokens"
    )


def test_unreadable_weights_file_is_a_one_line_error(zoo, tiny, tmp_path):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 truncated zip")
    (tmp_path / "vocab.txt").write_text((tiny["dir"] / "vocab.txt").read_text())
    photo = tiny["photos"] / "scene0.png"
    assert_one_line_error(zoo("demo", "captioning", photo, "--weights", bad), "broken.keras", "not a loadable")


def test_beam_zero_is_a_one_line_error(zoo, tiny, tmp_path):
    photo = tiny["photos"] / "scene0.png"
    maps = tmp_path / "maps"
    assert_one_line_error(
        zoo("demo", "captioning", photo, "--weights", tiny["dir"], "--beam", 0, "-o", maps), "--beam 0"
    )
    assert not maps.exists()
    assert_one_line_error(zoo("evaluate", "captioning", "--weights", tiny["dir"], "--beam", 0), "--beam 0")


def _caption_folder(tmp_path, tiny, lines: list[str]) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    Image.open(tiny["photos"] / "scene0.png").save(folder / "a.png")
    (folder / "captions.txt").write_text("\n".join(lines) + "\n")
    return folder


def test_empty_caption_line_is_a_one_line_error(zoo, tiny, tmp_path):
    folder = _caption_folder(tmp_path, tiny, ["a.png\ta small red circle", "a.png\t   "])
    assert_one_line_error(
        zoo("evaluate", "captioning", "--weights", tiny["dir"], "--data", folder), "captions.txt:2", "empty caption"
    )
    assert_one_line_error(
        zoo("train", "captioning", "--data", folder, "--out", tmp_path / "run"), "captions.txt:2", "empty caption"
    )
    assert not (tmp_path / "run").exists()


def test_caption_over_the_model_limit_is_a_one_line_error(zoo, tiny, tmp_path):
    long_caption = " ".join(["a small red circle"] * 4)  # 16 words; the model's limit is 14
    folder = _caption_folder(tmp_path, tiny, [f"a.png\t{long_caption}"])
    assert_one_line_error(
        zoo("evaluate", "captioning", "--weights", tiny["dir"], "--data", folder),
        "captions.txt:1",
        "16 words",
        "limit of 14",
    )


# ------------------------------------------------------------------- slow


@pytest.mark.slow
def test_quick_preset_reaches_the_bleu_targets(zoo, tmp_path):
    """The issue's targets: BLEU-4 >= 0.80 on seen pairs and >= 0.60 on unseen pairs, from `--preset quick`."""
    result = zoo("train", "captioning", "--preset", "quick", "--out", tmp_path / "run")
    assert result.code == 0, result.err
    scores = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert scores["seen"]["bleu_4"] >= 0.80 and scores["unseen"]["bleu_4"] >= 0.60, scores
