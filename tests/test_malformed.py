"""A matrix of malformed checkpoints and inputs: each must fail with the library's own error type
and a message that says what is wrong, where, and how to fix it."""

from __future__ import annotations

import json
import math
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from leanformers import AutoConfig, AutoFeatureExtractor, AutoImageProcessor, AutoModel, AutoTokenizer
from leanformers.errors import (
    CheckpointNotFoundError,
    ConfigError,
    InputError,
    LeanformersError,
    RemoteCodeError,
    TokenizerError,
    UnsupportedModelError,
    WeightsError,
)

BERT = {
    "model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1,
    "num_attention_heads": 2, "intermediate_size": 20, "max_position_embeddings": 32,
}
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "the", "a", "##s"]
IMAGE_CONFIG = {
    "image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": 8, "width": 8},
    "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
}
AUDIO_CONFIG = {
    "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "sampling_rate": 16000,
    "padding_value": 0.0, "do_normalize": True, "return_attention_mask": False,
}


@pytest.fixture(scope="module")
def bert_dir(tmp_path_factory) -> Path:
    """A tiny, valid BERT checkpoint with a vocab.txt tokenizer, written by leanformers itself."""
    folder = tmp_path_factory.mktemp("bert")
    (folder / "config.json").write_text(json.dumps(BERT))
    torch.manual_seed(0)
    model = AutoModel.from_config(AutoConfig.from_pretrained(folder))
    model.save_pretrained(folder)
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return folder


@pytest.fixture
def ckpt(bert_dir, tmp_path) -> Path:
    """A fresh copy of the valid checkpoint, for a test to break."""
    target = tmp_path / "ckpt"
    shutil.copytree(bert_dir, target)
    return target


def write_config(folder: Path, data) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(data if isinstance(data, str) else json.dumps(data))
    return folder


def _header_file(path: Path, header: dict, data: bytes = b"") -> Path:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


# -- config.json ---------------------------------------------------------------------------------

CONFIG_CASES = {
    "invalid_json": ('{"model_type": "bert",', ConfigError, r"config\.json is not valid JSON .*line 1"),
    "not_utf8": (b"\xff\xfe{}", ConfigError, r"not UTF-8"),
    "json_list": ("[1, 2]", ConfigError, r"must hold a JSON object, but holds a list"),
    "json_string": ('"bert"', ConfigError, r"must hold a JSON object, but holds a str"),
    "json_null": ("null", ConfigError, r"JSON object"),
    "missing_model_type": ({"hidden_size": 16}, UnsupportedModelError, r"no 'model_type'.*Add one of: .*bert"),
    "unknown_model_type": ({"model_type": "gpt7"}, UnsupportedModelError, r"'gpt7'.*Supported model types"),
    "model_type_list": ({"model_type": ["bert"]}, ConfigError, r"model_type must be a string"),
    "model_type_number": ({"model_type": 3}, ConfigError, r"model_type must be a string"),
    "remote_code": ({"model_type": "evil", "auto_map": {"AutoModel": "x.Y"}}, RemoteCodeError, r"never runs code"),
    "hidden_size_string": ({**BERT, "hidden_size": "big"}, ConfigError, r"hidden_size must be a positive integer.*'big'"),
    "num_layers_negative": ({**BERT, "num_hidden_layers": -1}, ConfigError, r"num_hidden_layers must be a positive"),
    "num_layers_float": ({**BERT, "num_hidden_layers": 1.5}, ConfigError, r"num_hidden_layers must be a positive"),
    "heads_not_dividing": ({**BERT, "num_attention_heads": 3}, ConfigError, r"multiple of num_attention_heads"),
    "id2label_list": ({**BERT, "id2label": ["a", "b"]}, ConfigError, r"id2label must be a mapping.*list"),
    "id2label_bad_key": ({**BERT, "id2label": {"x": "a"}}, ConfigError, r"id2label keys must be integers"),
    "label2id_list": ({**BERT, "id2label": {"0": "a"}, "label2id": ["a"]}, ConfigError, r"label2id must be a mapping"),
    "label2id_bad_value": ({**BERT, "label2id": {"a": "zero"}}, ConfigError, r"label2id values must be integers"),
    "dropout_above_one": ({**BERT, "hidden_dropout_prob": 2}, ConfigError, r"probability between 0 and 1"),
    "unknown_activation": ({**BERT, "hidden_act": "wiggle"}, ConfigError, r"not a known activation"),
    "bad_problem_type": ({**BERT, "problem_type": "guess"}, ConfigError, r"problem_type must be one of"),
    "pad_id_outside_vocab": ({**BERT, "pad_token_id": 500}, ConfigError, r"pad_token_id=500"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_malformed_config(case, tmp_path):
    content, error, message = CONFIG_CASES[case]
    folder = tmp_path / "ckpt"
    folder.mkdir()
    if isinstance(content, bytes):
        (folder / "config.json").write_bytes(content)
    else:
        write_config(folder, content)
    with pytest.raises(error, match=message) as info:
        AutoConfig.from_pretrained(folder)
    assert isinstance(info.value, LeanformersError)
    if error is ConfigError and "JSON" not in message and "UTF-8" not in message:
        assert str(folder) in str(info.value), "the message must say which checkpoint"


def test_missing_checkpoint_folder(tmp_path):
    with pytest.raises(CheckpointNotFoundError, match="neither an existing folder nor a valid hub"):
        AutoConfig.from_pretrained(str(tmp_path / "nowhere" / "x" / "y"))


def test_missing_config_json_lists_the_folder(tmp_path):
    (tmp_path / "vocab.txt").write_text("a\n")
    with pytest.raises(CheckpointNotFoundError, match=r"No file named 'config.json'.*It holds: vocab.txt"):
        AutoConfig.from_pretrained(tmp_path)


# -- weights -------------------------------------------------------------------------------------


def test_missing_weights(ckpt):
    (ckpt / "model.safetensors").unlink()
    with pytest.raises(CheckpointNotFoundError, match=r"has no weights: looked for model.safetensors"):
        AutoModel.from_pretrained(ckpt)


def test_truncated_safetensors(ckpt):
    data = (ckpt / "model.safetensors").read_bytes()
    (ckpt / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(WeightsError, match=r"truncated.*Re-download"):
        AutoModel.from_pretrained(ckpt)


def test_safetensors_too_short(ckpt):
    (ckpt / "model.safetensors").write_bytes(b"\x01\x02")
    with pytest.raises(WeightsError, match=r"too short .*re-download"):
        AutoModel.from_pretrained(ckpt)


def test_corrupted_safetensors_header(ckpt):
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[8:12] = b"\x00\xff\x00\xff"
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"not valid JSON; the file is corrupt"):
        AutoModel.from_pretrained(ckpt)


def test_safetensors_header_length_lies(ckpt):
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[:8] = struct.pack("<Q", 2**63)
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match=r"corrupt or truncated header"):
        AutoModel.from_pretrained(ckpt)


def test_safetensors_unknown_dtype(tmp_path):
    path = _header_file(tmp_path / "model.safetensors", {"w": {"dtype": "Q7", "shape": [1], "data_offsets": [0, 4]}}, b"0000")
    write_config(tmp_path, BERT)
    with pytest.raises(WeightsError, match=r"tensor 'w' has a malformed header entry"):
        AutoModel.from_pretrained(path.parent)


def test_safetensors_dim_past_64_bits(tmp_path):
    """Found by the fuzz test: an empty tensor (one dim 0) whose other dim is 2**63 has a consistent
    byte count of 0, and torch.empty then failed with its own TypeError."""
    from leanformers.modeling.loading import SafetensorsFile

    entry = {"dtype": "F64", "shape": [0, 2**63], "data_offsets": [0, 0]}
    path = _header_file(tmp_path / "model.safetensors", {"w": entry}, b"")
    with pytest.raises(WeightsError, match=r"tensor 'w' has a malformed header entry .*64 bits"):
        SafetensorsFile(str(path))


def test_shard_index_names_missing_shard(ckpt):
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {"embeddings.word_embeddings.weight": "model-00001-of-00002.safetensors"}})
    )
    with pytest.raises(CheckpointNotFoundError, match=r"model-00001-of-00002.safetensors.*It holds"):
        AutoModel.from_pretrained(ckpt)


def test_shard_index_not_json(ckpt):
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors.index.json").write_text("{weight_map")
    with pytest.raises(WeightsError, match=r"shard index .* is malformed .*re-download"):
        AutoModel.from_pretrained(ckpt)


def test_wrong_tensor_shape_is_reported_not_silently_loaded(ckpt):
    state = load_file(ckpt / "model.safetensors")
    state["embeddings.word_embeddings.weight"] = torch.zeros(7, 3)
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.raises(WeightsError, match=r"embeddings.word_embeddings.weight.*\(7, 3\).*ignore_mismatched_sizes"):
        AutoModel.from_pretrained(ckpt)
    model, info = AutoModel.from_pretrained(ckpt, ignore_mismatched_sizes=True, output_loading_info=True)
    assert info["mismatched_keys"]


def test_integer_data_for_a_float_weight(ckpt):
    state = load_file(ckpt / "model.safetensors")
    state["embeddings.word_embeddings.weight"] = torch.ones(50, 16, dtype=torch.int64)
    save_file(state, str(ckpt / "model.safetensors"))
    with pytest.raises(WeightsError, match=r"embeddings.word_embeddings.weight.*torch.int64.*floating-point"):
        AutoModel.from_pretrained(ckpt)


def test_half_precision_weights_are_converted(ckpt):
    state = {k: v.half() for k, v in load_file(ckpt / "model.safetensors").items()}
    save_file(state, str(ckpt / "model.safetensors"))
    model = AutoModel.from_pretrained(ckpt, dtype=torch.float32)
    assert model.embeddings.word_embeddings.weight.dtype == torch.float32


def test_bin_that_is_not_a_pickle(ckpt):
    (ckpt / "model.safetensors").unlink()
    (ckpt / "pytorch_model.bin").write_bytes(b"this is not a pickle")
    with pytest.raises(WeightsError, match=r"pytorch_model.bin"):
        AutoModel.from_pretrained(ckpt)


# -- tokenizer files -----------------------------------------------------------------------------


def test_tokenizer_json_that_is_not_one(tmp_path):
    (tmp_path / "tokenizer.json").write_text(json.dumps({"hello": "world"}))
    with pytest.raises(TokenizerError, match=r"tokenizer.json"):
        AutoTokenizer.from_pretrained(tmp_path)


def test_tokenizer_json_invalid_json(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(TokenizerError, match=r"tokenizer.json"):
        AutoTokenizer.from_pretrained(tmp_path)


def test_tokenizer_config_not_an_object(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB))
    (tmp_path / "tokenizer_config.json").write_text("[1]")
    with pytest.raises(LeanformersError, match=r"tokenizer_config.json"):
        AutoTokenizer.from_pretrained(tmp_path)


def test_empty_vocab_txt(tmp_path):
    (tmp_path / "vocab.txt").write_text("")
    with pytest.raises(TokenizerError, match=r"vocab.txt"):
        AutoTokenizer.from_pretrained(tmp_path)


def test_no_tokenizer_files(tmp_path):
    write_config(tmp_path, BERT)
    with pytest.raises(LeanformersError, match=r"tokenizer"):
        AutoTokenizer.from_pretrained(tmp_path)


BPE_VOCAB = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 4, "h": 5, "e": 6, "he": 7, "\u0120": 8}
BPE_MERGES = "#version: 0.2\nh e\n"
ROBERTA_CONFIG = {"tokenizer_class": "RobertaTokenizer"}
BPE_JSON = {
    "version": "1.0", "added_tokens": [], "normalizer": None, "pre_tokenizer": None, "post_processor": None,
    "decoder": None, "model": {"type": "BPE", "vocab": BPE_VOCAB, "merges": ["h e"]},
}


def write_tokenizer_files(folder: Path, files: dict) -> Path:
    for name, content in files.items():
        (folder / name).write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
    return folder


def test_bpe_baseline_loads(tmp_path):
    """The files the cases below break are valid as they stand, in both forms."""
    vocab_files = {"vocab.json": BPE_VOCAB, "merges.txt": BPE_MERGES, "tokenizer_config.json": ROBERTA_CONFIG}
    tokenizer = AutoTokenizer.from_pretrained(write_tokenizer_files(tmp_path, vocab_files))
    assert type(tokenizer).__name__ == "RobertaTokenizer"
    assert tokenizer("hehe")["input_ids"] == [0, 7, 7, 2]
    json_dir = tmp_path / "json"
    json_dir.mkdir()
    write_tokenizer_files(json_dir, {"tokenizer.json": BPE_JSON, "tokenizer_config.json": ROBERTA_CONFIG})
    assert AutoTokenizer.from_pretrained(json_dir)("hehe")["input_ids"] == [0, 7, 7, 2]


@pytest.mark.parametrize(
    ("files", "error", "pattern"),
    [
        ({"vocab.json": BPE_VOCAB}, TokenizerError, r"no merges\.txt"),
        ({"vocab.json": BPE_VOCAB, "merges.txt": "#version: 0.2\nh e x\n"}, TokenizerError, r"merges\.txt.*line 2"),
        ({"vocab.json": BPE_VOCAB, "merges.txt": "#version: 0.2\n\nh e\n"}, TokenizerError, r"merges\.txt.*line 2"),
        ({"vocab.json": BPE_VOCAB, "merges.txt": "h q\n"}, TokenizerError, r"merges\.txt.*'q'.*not in the vocab"),
        ({"vocab.json": BPE_VOCAB, "merges.txt": "e h\n"}, TokenizerError, r"merges\.txt.*'eh'.*not in the vocab"),
        ({"vocab.json": "{not json", "merges.txt": BPE_MERGES}, TokenizerError, r"vocab\.json"),
        ({"vocab.json": ["h", "e"], "merges.txt": BPE_MERGES}, TokenizerError, r"vocab\.json.*JSON object"),
        ({"vocab.json": {"h": "0"}, "merges.txt": BPE_MERGES}, TokenizerError, r"vocab\.json.*integer ids.*'h'"),
        ({"merges.txt": BPE_MERGES}, TokenizerError, r"neither tokenizer\.json nor vocab\.json"),
        ({"tokenizer.json": {**BPE_JSON, "model": {"type": "WordPiece", "vocab": BPE_VOCAB}}}, TokenizerError,
         r"tokenizer\.json.*BPE model.*WordPiece"),
        ({"tokenizer.json": {**BPE_JSON, "model": {"type": "BPE", "vocab": BPE_VOCAB, "merges": ["h e x"]}}},
         TokenizerError, r"tokenizer\.json.*merge 1"),
        ({"tokenizer.json": {**BPE_JSON, "model": {"type": "BPE", "vocab": BPE_VOCAB, "merges": ["e h"]}}},
         TokenizerError, r"tokenizer\.json.*'eh'.*not in the vocab"),
        ({"vocab.json": BPE_VOCAB, "merges.txt": BPE_MERGES,
          "tokenizer_config.json": {**ROBERTA_CONFIG, "add_prefix_space": "yes"}},
         ConfigError, r"add_prefix_space.*true or false"),
    ],
    ids=["no-merges", "three-part-merge", "blank-merge-line", "merge-of-unknown-token", "merge-result-unknown",
         "vocab-not-json", "vocab-a-list", "vocab-string-id", "no-vocab", "json-wordpiece-model",
         "json-bad-merge", "json-merge-result-unknown", "bad-add-prefix-space"],
)
def test_malformed_bpe_tokenizer(tmp_path, files, error, pattern):
    write_tokenizer_files(tmp_path, {"tokenizer_config.json": ROBERTA_CONFIG, **files})
    with pytest.raises(error, match=pattern):
        AutoTokenizer.from_pretrained(tmp_path)


def test_bpe_class_from_model_type_without_vocab_json(tmp_path):
    write_tokenizer_files(tmp_path, {"config.json": {"model_type": "roberta"}, "vocab.txt": "\n".join(VOCAB)})
    with pytest.raises(TokenizerError, match=r"vocab\.json.*RobertaTokenizer"):
        AutoTokenizer.from_pretrained(tmp_path)


def test_tokenizer_larger_than_the_models_vocabulary(ckpt):
    """vocab.txt gives ids past config.json's vocab_size: refused when model and tokenizer meet,
    naming the file, rather than failing on the first text that reaches those ids."""
    from leanformers import pipeline

    (ckpt / "vocab.txt").write_text("\n".join(VOCAB + [f"extra{i}" for i in range(60)]) + "\n")
    with pytest.raises(TokenizerError, match=r"vocab\.txt.*ids up to 69.*vocab_size 50"):
        pipeline("feature-extraction", model=str(ckpt))


@pytest.mark.parametrize("content", [b"", b"not a sentencepiece model at all", b"\x0a\xff\xff\xff\xff\xff"])
def test_sentencepiece_file_that_is_not_one(tmp_path, content):
    (tmp_path / "sentencepiece.bpe.model").write_bytes(content)
    write_tokenizer_files(tmp_path, {"tokenizer_config.json": {"tokenizer_class": "XLMRobertaTokenizer"}})
    with pytest.raises(TokenizerError, match=r"sentencepiece\.bpe\.model"):
        AutoTokenizer.from_pretrained(tmp_path)


@pytest.fixture(scope="module")
def tokenizer(bert_dir):
    return AutoTokenizer.from_pretrained(bert_dir)


def test_tokenizer_none(tokenizer):
    with pytest.raises(InputError, match=r"needs text"):
        tokenizer(None)


def test_tokenizer_empty_batch(tokenizer):
    with pytest.raises(InputError, match=r"empty list"):
        tokenizer([])


def test_tokenizer_wrong_type(tokenizer):
    with pytest.raises(InputError, match=r"text"):
        tokenizer(42)


def test_tokenizer_empty_text_is_fine(tokenizer):
    assert tokenizer("")["input_ids"] == [2, 3]


def test_tokenizer_bad_padding_option(tokenizer):
    with pytest.raises(InputError):
        tokenizer("hello", padding="sideways")


# -- model inputs --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def model(bert_dir):
    return AutoModel.from_pretrained(bert_dir)


def test_token_ids_beyond_vocabulary(model):
    with pytest.raises(InputError, match=r"embedding has 50 rows"):
        model(input_ids=torch.tensor([[1, 2, 500]]))


def test_negative_token_ids(model):
    with pytest.raises(InputError):
        model(input_ids=torch.tensor([[1, -3]]))


def test_three_dimensional_input_ids(model):
    with pytest.raises(InputError, match=r"\(batch, sequence\)"):
        model(input_ids=torch.ones(1, 2, 3, dtype=torch.long))


def test_float_input_ids(model):
    with pytest.raises(InputError, match=r"integer token ids"):
        model(input_ids=torch.ones(1, 3))


def test_sequence_longer_than_positions(model):
    with pytest.raises(InputError, match=r"32"):
        model(input_ids=torch.ones(1, 40, dtype=torch.long))


# -- image processor -----------------------------------------------------------------------------


def _image_dir(tmp_path: Path, **changes) -> Path:
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({**IMAGE_CONFIG, **changes}))
    return tmp_path


@pytest.mark.parametrize(
    "changes",
    [
        {"size": {"height": 0, "width": 8}},
        {"size": {"height": -4, "width": 8}},
        {"size": {"shortest_edge": 0}},
        {"size": "big"},
        {"image_mean": [0.5, 0.5]},
        {"image_std": [0.0, 0.5, 0.5]},
        {"rescale_factor": "x"},
        {"do_center_crop": True, "crop_size": {"height": -1, "width": 3}},
    ],
    ids=["size_zero", "size_negative", "shortest_edge_zero", "size_string", "mean_two_channels", "std_zero",
         "rescale_string", "crop_negative"],
)
def test_impossible_image_settings(tmp_path, changes):
    folder = _image_dir(tmp_path, **changes)
    error = InputError if "image_mean" in changes else ConfigError  # a channel count is only known per image
    with pytest.raises(error) as info:
        processor = AutoImageProcessor.from_pretrained(folder)
        processor(Image.new("RGB", (16, 16)), return_tensors="pt")
    key = next(iter(changes)) if len(changes) == 1 else "crop_size"
    assert key in str(info.value) or key.split("_")[0] in str(info.value)


def test_preprocessor_config_not_json(tmp_path):
    (tmp_path / "preprocessor_config.json").write_text("{")
    with pytest.raises(ConfigError, match=r"preprocessor_config.json"):
        AutoImageProcessor.from_pretrained(tmp_path)


@pytest.fixture(scope="module")
def image_processor(tmp_path_factory):
    return AutoImageProcessor.from_pretrained(_image_dir(tmp_path_factory.mktemp("img")))


def test_image_of_zero_pixels(image_processor):
    with pytest.raises(InputError, match=r"0"):
        image_processor(np.zeros((0, 5, 3), dtype=np.uint8), return_tensors="pt")


@pytest.mark.parametrize("image", [Image.new("RGB", (0, 0)), Image.new("RGB", (0, 5)), torch.zeros(3, 0, 4)],
                         ids=["pil_0x0", "pil_0x5", "tensor_3x0x4"])
def test_empty_images(image_processor, image):
    with pytest.raises(InputError, match=r"at least one pixel"):
        image_processor(image, return_tensors="pt")


def test_image_with_nan(image_processor):
    with pytest.raises(InputError, match=r"NaN or infinite"):
        image_processor(np.full((4, 4, 3), np.nan, dtype=np.float32), return_tensors="pt")


def test_pixels_with_wrong_shape(image_processor):
    with pytest.raises(InputError, match=r"dimensions"):
        image_processor(np.zeros((2, 2, 2, 2, 3), dtype=np.uint8), return_tensors="pt")


def test_image_file_that_is_not_an_image(image_processor, tmp_path):
    (tmp_path / "x.png").write_bytes(b"not a png")
    with pytest.raises(InputError, match=r"Cannot read .*x.png.* as an image"):
        image_processor(str(tmp_path / "x.png"))


def test_decompression_bomb(image_processor, tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    Image.new("L", (200, 200)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 40,000 pixels is > 2x the limit
    with pytest.raises(InputError, match=r"bomb.png.*pixels"):
        image_processor(str(path))


def test_model_pixel_values_wrong_shape(tmp_path):
    config = {"model_type": "vit", "hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
              "intermediate_size": 20, "image_size": 8, "patch_size": 4}
    vit = AutoModel.from_config(AutoConfig.from_pretrained(write_config(tmp_path, config)))
    with pytest.raises(InputError, match=r"pixel_values"):
        vit(pixel_values=torch.zeros(1, 8, 8))
    with pytest.raises(InputError, match=r"has 1 channels \(shape \(1, 1, 8, 8\)\).*\(batch, 3, 8, 8\)"):
        vit(pixel_values=torch.zeros(1, 1, 8, 8))


# -- audio feature extractor ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def feature_extractor(tmp_path_factory):
    folder = tmp_path_factory.mktemp("audio")
    (folder / "preprocessor_config.json").write_text(json.dumps(AUDIO_CONFIG))
    return AutoFeatureExtractor.from_pretrained(folder)


def test_audio_empty(feature_extractor):
    with pytest.raises(InputError, match=r"empty"):
        feature_extractor(np.zeros(0, dtype=np.float32), sampling_rate=16000)


def test_audio_nan(feature_extractor):
    with pytest.raises(InputError, match=r"NaN|finite"):
        feature_extractor(np.array([0.1, math.nan, 0.2], dtype=np.float32), sampling_rate=16000)


def test_audio_stereo(feature_extractor):
    with pytest.raises(InputError, match=r"mono|channel"):
        feature_extractor(np.zeros((1000, 2), dtype=np.float32), sampling_rate=16000)
    with pytest.raises(InputError, match=r"mono|channel"):
        feature_extractor([np.zeros((1000, 2), dtype=np.float32)], sampling_rate=16000)


def test_audio_wrong_rate(feature_extractor):
    with pytest.raises(InputError, match=r"16000"):
        feature_extractor(np.zeros(1000, dtype=np.float32), sampling_rate=8000)


@pytest.mark.parametrize(
    "changes", [{"sampling_rate": 0}, {"sampling_rate": "fast"}, {"feature_size": -1}, {"padding_side": "up"}],
    ids=["rate_zero", "rate_string", "feature_size_negative", "padding_side"],
)
def test_impossible_audio_settings(tmp_path, changes):
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({**AUDIO_CONFIG, **changes}))
    with pytest.raises(ConfigError, match=next(iter(changes))):
        AutoFeatureExtractor.from_pretrained(tmp_path)


# -- attacks: code in pickles ---------------------------------------------------------------------


class _Payload:
    """Unpickling this calls open(marker, "w"): the marker file appears if any code runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _malicious_bin(path: Path, marker: Path, legacy: bool) -> Path:
    state = {"embeddings.word_embeddings.weight": torch.zeros(50, 16), "payload": _Payload(marker)}
    torch.save(state, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_the_payload_really_runs_code_when_unpickled(tmp_path, legacy):
    """Guard for the tests below: an unsafe load of this file does create the marker."""
    marker = tmp_path / "PWNED"
    path = _malicious_bin(tmp_path / "pytorch_model.bin", marker, legacy)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_malicious_pickle_never_runs(ckpt, tmp_path, legacy):
    marker = tmp_path / "PWNED"
    (ckpt / "model.safetensors").unlink()
    _malicious_bin(ckpt / "pytorch_model.bin", marker, legacy)
    with pytest.raises(WeightsError, match=r"weights-only.*never unpickles.*safetensors"):
        AutoModel.from_pretrained(ckpt)
    assert not marker.exists()


def test_malicious_pickle_in_a_bin_shard(ckpt, tmp_path):
    marker = tmp_path / "PWNED"
    (ckpt / "model.safetensors").unlink()
    _malicious_bin(ckpt / "pytorch_model-00001-of-00001.bin", marker, legacy=False)
    (ckpt / "pytorch_model.bin.index.json").write_text(
        json.dumps({"weight_map": {"embeddings.word_embeddings.weight": "pytorch_model-00001-of-00001.bin"}})
    )
    with pytest.raises(WeightsError, match=r"weights-only"):
        AutoModel.from_pretrained(ckpt)
    assert not marker.exists()


def test_remote_code_is_refused_even_when_trusted(tmp_path):
    write_config(tmp_path, {"model_type": "evil", "auto_map": {"AutoModel": "modeling_evil.Evil"}})
    (tmp_path / "modeling_evil.py").write_text(f"open({str(tmp_path / 'PWNED')!r}, 'w')\n")
    with pytest.raises(RemoteCodeError, match=r"never runs code"):
        AutoModel.from_pretrained(tmp_path, trust_remote_code=True)
    assert not (tmp_path / "PWNED").exists()


# -- attacks: paths outside the checkpoint --------------------------------------------------------


@pytest.fixture
def nested(tmp_path) -> Path:
    """A checkpoint at tmp/a/b, and a config.json outside it that must never be read."""
    write_config(tmp_path / "secret", BERT)
    (tmp_path / "a" / "b").mkdir(parents=True)
    return tmp_path / "a" / "b"


@pytest.mark.parametrize("subfolder", ["../../secret", "../..", "x/../../../secret", "..\\..\\secret", "/etc",
                                       str(Path("/").absolute())])
def test_subfolder_cannot_leave_the_checkpoint(nested, subfolder):
    with pytest.raises(InputError, match=r"points outside the checkpoint"):
        AutoConfig.from_pretrained(nested, subfolder=subfolder)


def test_subfolder_traversal_in_the_hub_cache(tmp_path, monkeypatch):
    """A hub id with subfolder='../..' must not reach files outside the snapshot."""
    from conftest import make_hub_cache

    cache = make_hub_cache(tmp_path / "cache", "org/model", {"config.json": json.dumps(BERT).encode()})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    with pytest.raises(InputError, match=r"points outside the checkpoint"):
        AutoConfig.from_pretrained("org/model", subfolder="../../../models--org--model/snapshots/" + "a" * 40)


@pytest.mark.parametrize("name", ["../secret", "org/../../secret", "org/..", "/nonexistent/abs/path"])
def test_names_posing_as_hub_ids(tmp_path, monkeypatch, name):
    monkeypatch.chdir(tmp_path / "..")
    with pytest.raises(CheckpointNotFoundError, match=r"neither an existing folder nor a valid hub"):
        AutoConfig.from_pretrained(name)


@pytest.mark.parametrize("shard", ["../secret/model.safetensors", "/etc/passwd", "..", ".hidden"])
def test_shard_index_cannot_leave_the_checkpoint(ckpt, shard):
    (ckpt / "model.safetensors").unlink()
    (ckpt / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": shard}}))
    with pytest.raises(WeightsError, match=r"unsafe shard file"):
        AutoModel.from_pretrained(ckpt)


# -- attacks: resource exhaustion -------------------------------------------------------------------


@pytest.mark.parametrize(
    "entry",
    [
        {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 16]},
        {"dtype": "F32", "shape": [2**62, 4], "data_offsets": [0, 0]},  # numel * 4 overflows 64 bits to 0
        {"dtype": "F64", "shape": [2**61], "data_offsets": [0, 0]},
        {"dtype": "F32", "shape": [2**64 + 1], "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]},  # negative dims multiply to 4 elements
        {"dtype": "F32", "shape": [-1], "data_offsets": [4, 0]},
        {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]},
        {"dtype": "F32", "shape": ["4"], "data_offsets": [0, 16]},
        {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]},
        {"dtype": "F32", "shape": [4], "data_offsets": [0, 2**70]},
        {"dtype": "F32", "shape": [4], "data_offsets": [-16, 0]},
        {"dtype": "F32", "shape": [4], "data_offsets": [0, 16, 32]},
        {"dtype": "F32", "shape": 4, "data_offsets": [0, 16]},
        {"dtype": ["F32"], "shape": [4], "data_offsets": [0, 16]},
        "not an object",
    ],
)
def test_absurd_safetensors_headers_fail_before_allocating(tmp_path, entry):
    from leanformers.modeling.loading import SafetensorsFile

    path = _header_file(tmp_path / "model.safetensors", {"w": entry}, b"\0" * 16)
    with pytest.raises(WeightsError, match=r"model.safetensors.*(corrupt|truncated)"):
        SafetensorsFile(str(path))
    write_config(tmp_path, BERT)
    with pytest.raises(WeightsError):
        AutoModel.from_pretrained(tmp_path)


def test_deeply_nested_safetensors_header(tmp_path):
    from leanformers.modeling.loading import SafetensorsFile

    raw = b"[" * 100_000 + b"]" * 100_000
    path = tmp_path / "model.safetensors"
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)
    with pytest.raises(WeightsError, match=r"not valid JSON"):
        SafetensorsFile(str(path))


def test_deeply_nested_config_json(tmp_path):
    (tmp_path / "config.json").write_text('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(ConfigError, match=r"config.json"):
        AutoConfig.from_pretrained(tmp_path)


# -- the hierarchy ----------------------------------------------------------------------------------


def test_every_error_is_also_the_builtin_callers_catch():
    from leanformers import errors

    assert issubclass(errors.CheckpointNotFoundError, (FileNotFoundError, OSError))
    for name in ("ConfigError", "UnsupportedModelError", "RemoteCodeError", "WeightsError", "InputError",
                 "TokenizerError", "UnknownNameError"):
        cls = getattr(errors, name)
        assert issubclass(cls, LeanformersError) and issubclass(cls, ValueError), name
    assert issubclass(errors.UnknownNameError, KeyError)
    assert str(errors.UnknownNameError("Unknown task 'x'")) == "Unknown task 'x'"  # not quoted like a key
    assert set(errors.__all__) == {n for n in dir(errors) if n.endswith("Error") and n != "LeanformersError"} | {
        "LeanformersError"}


@pytest.mark.parametrize("revision", ["../../../secret", "/etc/passwd", "main/../../x"])
def test_revision_cannot_leave_the_hub_cache(tmp_path, monkeypatch, revision):
    from conftest import make_hub_cache

    cache = make_hub_cache(tmp_path / "cache", "org/model", {"config.json": json.dumps(BERT).encode()})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    with pytest.raises(InputError, match=r"revision=.*points outside the checkpoint"):
        AutoConfig.from_pretrained("org/model", revision=revision)


def test_damaged_ref_in_the_hub_cache_is_not_followed(tmp_path, monkeypatch):
    from conftest import make_hub_cache

    cache = make_hub_cache(tmp_path / "cache", "org/model", {"config.json": json.dumps(BERT).encode()})
    (cache / "models--org--model" / "refs" / "main").write_text("../../../../secret")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    with pytest.raises(CheckpointNotFoundError, match=r"not in the hub cache"):
        AutoConfig.from_pretrained("org/model")
