"""Property-based tests: whatever JSON a checkpoint holds, loading it either works or raises one of
the library's own errors (a LeanformersError) -- never a bare KeyError, TypeError, AttributeError
or RecursionError from deep inside json, torch or the tokenizers library.

The generated documents are biased toward plausible ones: a valid file with some keys dropped and
some real keys given values of the wrong type, since that is what reaches deep into the code.
"""

from __future__ import annotations

import json
import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image

from leanformers import AutoConfig, AutoFeatureExtractor, AutoImageProcessor, AutoTokenizer, registry
from leanformers.errors import LeanformersError

EXAMPLES = int(os.environ.get("LEANFORMERS_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)

# -- JSON strategies -------------------------------------------------------------------------------

NUMBERS = st.one_of(
    st.integers(min_value=-3, max_value=300),
    st.sampled_from([0, -1, 2**31, 2**63, 2**64 + 1, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=12))
JSON = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=8,
)


def mutated(valid: dict, extra_keys: list[str]) -> st.SearchStrategy:
    """A valid document with some keys dropped and some (real or extra) keys set to any JSON value."""
    keys = sorted(set(valid) | set(extra_keys))
    return st.tuples(
        st.sets(st.sampled_from(sorted(valid)), max_size=3) if valid else st.just(set()),
        st.dictionaries(st.sampled_from(keys), JSON, max_size=4),
    ).map(lambda change: {**{k: v for k, v in valid.items() if k not in change[0]}, **change[1]})


def documents(valid_documents: list[dict], extra_keys: list[str]) -> st.SearchStrategy:
    """Mostly mutated valid documents; sometimes any JSON at all, or an unmodified valid one."""
    variants = [mutated(doc, extra_keys) for doc in valid_documents]
    return st.one_of(*variants, *variants, *variants, JSON, st.sampled_from(valid_documents))


def small_ints_only(value, limit: int = 512) -> bool:
    """Whether every number in a document is small (so building from it cannot allocate gigabytes)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, (int, float)):
        return abs(value) <= limit if value == value else True
    if isinstance(value, list):
        return all(small_ints_only(v, limit) for v in value)
    return all(small_ints_only(v, limit) for v in value.values())


@pytest.fixture(scope="module")
def folder():
    # Thousands of small writes: use memory-backed storage where there is one.
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as name:
        yield Path(name)


def write(path: Path, document) -> None:
    path.write_text(document if isinstance(document, str) else json.dumps(document, allow_nan=True))


def ours_or_nothing(call) -> object | None:
    """Run ``call``; a library error is fine, any other exception fails the property."""
    try:
        return call()
    except LeanformersError:
        return None


# -- config.json ------------------------------------------------------------------------------------

VALID_CONFIGS = []
for _model_type in registry.supported_model_types():
    _config = registry.config_class_by_type(_model_type)().to_dict()
    _config.pop("_name_or_path", None)
    _config["id2label"] = {str(k): v for k, v in (_config.get("id2label") or {}).items()} or None
    VALID_CONFIGS.append(json.loads(json.dumps(_config)))
CONFIG_KEYS = ["model_type", "auto_map", "id2label", "label2id", "num_labels", "torch_dtype", "dtype",
               "problem_type", "architectures", "out_features", "out_indices", "stage_names"]


@FUZZ
@given(document=st.one_of(documents(VALID_CONFIGS, CONFIG_KEYS), st.text(max_size=30)))
def test_fuzz_config_json(folder, document):
    write(folder / "config.json", document)
    config = ours_or_nothing(lambda: AutoConfig.from_pretrained(folder))
    if config is not None:
        # A config that loaded can be written back and read again.
        config.save_pretrained(folder / "saved")
        ours_or_nothing(lambda: AutoConfig.from_pretrained(folder / "saved"))


# -- tokenizer files -------------------------------------------------------------------------------


def _valid_tokenizer_json() -> dict:
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s"])}
    tokenizer = Tokenizer(WordPiece(vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer()
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return json.loads(tokenizer.to_str())


VALID_TOKENIZER_JSON = _valid_tokenizer_json()
VALID_TOKENIZER_CONFIGS = [
    {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 16, "pad_token": "[PAD]",
     "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]", "mask_token": "[MASK]"},
    {"tokenizer_class": "BertTokenizerFast", "padding_side": "left", "truncation_side": "left",
     "added_tokens_decoder": {"0": {"content": "[PAD]", "special": True}}},
    {},
]
TOKENIZER_CONFIG_KEYS = ["tokenizer_class", "model_max_length", "padding_side", "truncation_side", "pad_token",
                         "added_tokens_decoder", "extra_special_tokens", "model_input_names", "chat_template",
                         "auto_map", "split_special_tokens", "clean_up_tokenization_spaces", "do_lower_case"]


def _use_tokenizer(folder: Path) -> None:
    tokenizer = ours_or_nothing(lambda: AutoTokenizer.from_pretrained(folder))
    if tokenizer is not None:
        ours_or_nothing(lambda: tokenizer(["hello worlds", "a"], padding=True, truncation=True, max_length=8))
        ours_or_nothing(lambda: tokenizer.decode([2, 5, 3, 999]))


@FUZZ
@given(config=documents(VALID_TOKENIZER_CONFIGS, TOKENIZER_CONFIG_KEYS), with_vocab=st.booleans())
def test_fuzz_tokenizer_config_json(folder, config, with_vocab):
    folder = folder / "tokenizer_config"
    folder.mkdir(exist_ok=True)
    (folder / "tokenizer.json").unlink(missing_ok=True)
    if with_vocab:
        (folder / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\nworld\n##s\n")
    else:
        write(folder / "tokenizer.json", VALID_TOKENIZER_JSON)
    write(folder / "tokenizer_config.json", config)
    _use_tokenizer(folder)


TOKENIZER_SECTIONS = {key: value for key, value in VALID_TOKENIZER_JSON.items() if isinstance(value, dict)}
NESTED_KEYS = sorted({key for section in TOKENIZER_SECTIONS.values() for key in section})


@FUZZ
@given(
    document=st.one_of(
        documents([VALID_TOKENIZER_JSON], list(VALID_TOKENIZER_JSON)),
        # one section (model, normalizer, post_processor, ...) with wrong-typed keys
        *[
            mutated(section, NESTED_KEYS).map(lambda changed, name=name: {**VALID_TOKENIZER_JSON, name: changed})
            for name, section in sorted(TOKENIZER_SECTIONS.items())
        ],
    )
)
def test_fuzz_tokenizer_json(folder, document):
    folder = folder / "tokenizer_json"
    folder.mkdir(exist_ok=True)
    write(folder / "tokenizer.json", document)
    _use_tokenizer(folder)


# -- preprocessor_config.json ----------------------------------------------------------------------

VALID_IMAGE_CONFIGS = [
    {"image_processor_type": "ViTImageProcessor", "size": {"height": 8, "width": 8}, "do_normalize": True,
     "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2},
    {"image_processor_type": "ConvNextImageProcessor", "size": {"shortest_edge": 12}, "crop_pct": 0.875},
    {"feature_extractor_type": "CLIPFeatureExtractor", "size": {"shortest_edge": 10},
     "crop_size": {"height": 8, "width": 8}, "do_center_crop": True, "do_convert_rgb": True},
    {"image_processor_type": "BitImageProcessor", "size": 9, "crop_size": 8},
]
IMAGE_KEYS = ["image_processor_type", "feature_extractor_type", "size", "crop_size", "do_resize", "do_rescale",
              "rescale_factor", "do_normalize", "image_mean", "image_std", "resample", "crop_pct",
              "do_center_crop", "do_convert_rgb", "input_data_format", "auto_map", "processor_class"]
IMAGES = [Image.new("RGB", (12, 7), (10, 200, 30)), np.zeros((5, 9), dtype=np.uint8),
          np.ones((3, 6, 6), dtype=np.float32)]


@FUZZ
@given(document=documents(VALID_IMAGE_CONFIGS, IMAGE_KEYS), image=st.sampled_from(range(len(IMAGES))))
def test_fuzz_image_preprocessor_json(folder, document, image):
    folder = folder / "image"
    folder.mkdir(exist_ok=True)
    write(folder / "preprocessor_config.json", document)
    processor = ours_or_nothing(lambda: AutoImageProcessor.from_pretrained(folder))
    if processor is not None and small_ints_only(document):
        ours_or_nothing(lambda: processor(IMAGES[image], return_tensors="np"))


VALID_AUDIO_CONFIGS = [
    {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1, "sampling_rate": 16000,
     "padding_value": 0.0, "padding_side": "right", "do_normalize": True, "return_attention_mask": True},
    {"feature_extractor_type": "Wav2Vec2FeatureExtractor"},
]
AUDIO_KEYS = ["feature_extractor_type", "processor_class", "auto_map", "feature_size", "sampling_rate",
              "padding_value", "padding_side", "do_normalize", "return_attention_mask"]
CLIP = np.sin(np.arange(200, dtype=np.float32) / 7)


@FUZZ
@given(document=documents(VALID_AUDIO_CONFIGS, AUDIO_KEYS))
def test_fuzz_audio_preprocessor_json(folder, document):
    folder = folder / "audio"
    folder.mkdir(exist_ok=True)
    write(folder / "preprocessor_config.json", document)
    extractor = ours_or_nothing(lambda: AutoFeatureExtractor.from_pretrained(folder))
    if extractor is not None:
        rate = extractor.sampling_rate
        ours_or_nothing(lambda: extractor([CLIP, CLIP[:50]], sampling_rate=rate, padding=True, return_tensors="np"))


# -- safetensors headers ---------------------------------------------------------------------------

DTYPES = ["F64", "F32", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2"]
DIMS = st.one_of(st.integers(min_value=0, max_value=6), st.sampled_from([-1, -2, 2**31, 2**40, 2**63, 2**64]),
                 st.floats(allow_nan=True), st.text(max_size=2), st.booleans())


@st.composite
def safetensors_files(draw) -> bytes:
    """A header of plausible and implausible entries, over a data section of random length."""
    entries = {}
    offset = 0
    for index in range(draw(st.integers(min_value=0, max_value=4))):
        dtype = draw(st.one_of(st.sampled_from(DTYPES), st.sampled_from(DTYPES), JSON))
        shape = draw(st.one_of(st.lists(st.integers(min_value=0, max_value=5), max_size=3),
                               st.lists(DIMS, max_size=3), JSON))
        size = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2}.get(dtype, 1) \
            if isinstance(dtype, str) else 1
        numel = int(np.prod(shape)) if isinstance(shape, list) and all(type(d) is int for d in shape) else 1
        honest = [offset, offset + max(numel, 0) * size]
        offsets = draw(st.one_of(st.just(honest), st.just(honest), st.lists(DIMS, max_size=3), JSON))
        if offsets == honest:
            offset = honest[1]
        entry = {"dtype": dtype, "shape": shape, "data_offsets": offsets}
        for key in draw(st.sets(st.sampled_from(sorted(entry)), max_size=1)):
            del entry[key]
        entries[draw(st.text(max_size=6)) + str(index)] = draw(st.one_of(st.just(entry), st.just(entry), JSON))
    if draw(st.booleans()):
        entries["__metadata__"] = draw(st.one_of(st.just({"format": "pt"}), JSON))
    header = draw(st.one_of(st.just(entries), st.just(entries), st.just(entries), JSON))
    raw = json.dumps(header, allow_nan=True).encode()
    if draw(st.booleans()):
        raw += b" " * draw(st.integers(min_value=0, max_value=7))  # the format pads headers with spaces
    claimed = draw(st.one_of(st.just(len(raw)), st.just(len(raw)), st.integers(min_value=0, max_value=2**64 - 1)))
    # Capped: an honest entry of a huge shape (2**64 elements) moves `offset` far past any memory.
    data = bytes(draw(st.integers(min_value=0, max_value=min(max(offset, 0), 4096) + 8)))
    if draw(st.booleans()):
        data = data[: draw(st.integers(min_value=0, max_value=len(data)))]
    return struct.pack("<Q", claimed) + raw + data


@FUZZ
@given(content=st.one_of(safetensors_files(), st.binary(max_size=40)))
def test_fuzz_safetensors_header(folder, content):
    from leanformers.modeling.loading import SafetensorsFile

    path = folder / "model.safetensors"
    path.write_bytes(content)
    opened = ours_or_nothing(lambda: SafetensorsFile(str(path)))
    if opened is not None:
        for name in opened:
            tensor = opened[name]
            assert tuple(tensor.shape) == opened.shape_of(name)
            assert tensor.dtype == opened.dtype_of(name)
