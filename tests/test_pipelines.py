"""pipelines: parity with the reference's ``transformers.pipeline`` on tiny random checkpoints
(same labels / tokens / spans, scores within 1e-5), batching equal to one-at-a-time, task
inference from ``config.architectures``, and input errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from parity import transformers

from leanformers.errors import InputError, UnsupportedModelError
from leanformers.pipelines import Pipeline, infer_task, pipeline

TEXT = {"vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
DISTIL = {"vocab_size": 30522, "dim": 32, "n_layers": 2, "n_heads": 4, "hidden_dim": 37}
NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SENTENCES = [
    "Hugging Face is based in New York City, says Julien.",
    "I love this!",
    "",
    "Unbelievably, the quartermaster's antidisestablishmentarianism persisted.",
]
ATOL = 1e-5
MAX_DIFF = [0.0]  # the largest score difference from the reference seen (printed with -s)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    print(f"\npipelines: largest difference from the reference: {MAX_DIFF[0]:.3g}")


def _save(model, folder: Path, tokenizer_from: Path | None = None) -> str:
    model.save_pretrained(folder)
    if tokenizer_from is not None:
        for name in ("tokenizer.json", "vocab.txt", "tokenizer_config.json"):
            shutil.copy(tokenizer_from / name, folder / name)
    return str(folder)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory, minilm_dir):
    """name -> folder of a tiny random checkpoint the reference saved."""
    root = tmp_path_factory.mktemp("pipelines")
    out: dict[str, str] = {}
    t = transformers

    def text(name, cls, config):
        torch.manual_seed(0)
        out[name] = _save(cls(config).eval(), root / name, minilm_dir)

    ner = {"id2label": dict(enumerate(NER_LABELS)), "label2id": {l: i for i, l in enumerate(NER_LABELS)}}
    text("bert-seq", t.BertForSequenceClassification, t.BertConfig(**TEXT, num_labels=3))
    text("bert-seq1", t.BertForSequenceClassification, t.BertConfig(**TEXT, num_labels=1))
    text("bert-tok", t.BertForTokenClassification, t.BertConfig(**TEXT, **ner))
    text("bert-qa", t.BertForQuestionAnswering, t.BertConfig(**TEXT))
    text("bert-mlm", t.BertForMaskedLM, t.BertConfig(**TEXT))
    text("bert-base", t.BertModel, t.BertConfig(**TEXT))
    text("distil-seq", t.DistilBertForSequenceClassification, t.DistilBertConfig(**DISTIL, num_labels=2))
    text("distil-tok", t.DistilBertForTokenClassification, t.DistilBertConfig(**DISTIL, **ner))

    vit = {"image_size": 32, "patch_size": 8, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37}
    resnet = {"embedding_size": 8, "hidden_sizes": [8, 16], "depths": [1, 1], "out_features": ["stage1", "stage2"]}
    vit_processor = t.ViTImageProcessor(size={"height": 32, "width": 32})
    resnet_processor = t.ConvNextImageProcessor(size={"shortest_edge": 32})
    for name, cls, config, processor in (
        ("vit-cls", t.ViTForImageClassification, t.ViTConfig(**vit, num_labels=7), vit_processor),
        ("vit-base", t.ViTModel, t.ViTConfig(**vit), vit_processor),
        ("resnet-cls", t.ResNetForImageClassification, t.ResNetConfig(**resnet, num_labels=4), resnet_processor),
        ("resnet-backbone", t.ResNetBackbone, t.ResNetConfig(**resnet), resnet_processor),
    ):
        torch.manual_seed(0)
        out[name] = _save(cls(config).eval(), root / name)
        processor.save_pretrained(root / name)

    audio = {
        "vocab_size": 32, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 37,
        "conv_dim": (16, 16, 16), "conv_kernel": (10, 3, 3), "conv_stride": (5, 2, 2), "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2, "classifier_proj_size": 24, "feat_extract_norm": "layer",
        "do_stable_layer_norm": True, "conv_bias": True,
    }
    extractor = t.Wav2Vec2FeatureExtractor(return_attention_mask=True, do_normalize=True)
    for name, cls, config in (
        ("w2v-cls", t.Wav2Vec2ForSequenceClassification, t.Wav2Vec2Config(**audio, num_labels=5)),
        ("w2v-ctc", t.Wav2Vec2ForCTC, t.Wav2Vec2Config(**audio, pad_token_id=0)),
    ):
        torch.manual_seed(0)
        out[name] = _save(cls(config).eval(), root / name)
        extractor.save_pretrained(root / name)
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ'"
    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, **{c: 5 + i for i, c in enumerate(letters)}}
    (root / "w2v-ctc" / "vocab.json").write_text(json.dumps(vocab))
    (root / "w2v-ctc" / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "Wav2Vec2CTCTokenizer", "unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>",
        "pad_token": "<pad>", "word_delimiter_token": "|", "do_lower_case": False,
    }))
    return out


_REF_CACHE: dict = {}


def ref_pipe(task, folder):
    key = (task, folder)
    if key not in _REF_CACHE:
        _REF_CACHE[key] = transformers.pipeline(task, model=folder, device="cpu")
    return _REF_CACHE[key]


def _close(ours, ref, path="result"):
    """Same structure, same strings / ints, floats within ATOL."""
    if isinstance(ref, dict):
        assert isinstance(ours, dict), f"{path}: {type(ours).__name__} vs dict"
        assert set(ours) == set(ref), f"{path}: keys {sorted(ours)} vs {sorted(ref)}"
        for key in ref:
            _close(ours[key], ref[key], f"{path}.{key}")
    elif isinstance(ref, (list, tuple)):
        assert isinstance(ours, (list, tuple)), f"{path}: {type(ours).__name__} vs list"
        assert len(ours) == len(ref), f"{path}: {len(ours)} items vs {len(ref)}"
        for i, (a, b) in enumerate(zip(ours, ref)):
            _close(a, b, f"{path}[{i}]")
    elif isinstance(ref, (float, np.floating)):
        diff = abs(float(ours) - float(ref))
        MAX_DIFF[0] = max(MAX_DIFF[0], diff)
        assert diff <= ATOL, f"{path}: {ours} vs {ref}"
    elif isinstance(ref, torch.Tensor):
        assert torch.allclose(torch.as_tensor(ours, dtype=torch.float32), ref.float(), atol=ATOL), path
    else:
        assert ours == ref, f"{path}: {ours!r} vs {ref!r}"


def _image(seed: int, size=(48, 40)):
    from PIL import Image

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))


def _speech(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * np.sin(np.arange(n) / 7.0) + 0.05 * rng.standard_normal(n)).astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Text
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["bert-seq", "bert-seq1", "distil-seq"])
def test_text_classification_parity(ckpt, name):
    ours, ref = pipeline("text-classification", model=ckpt[name]), ref_pipe("text-classification", ckpt[name])
    _close(ours(SENTENCES[0]), ref(SENTENCES[0]))
    _close(ours(SENTENCES), ref(SENTENCES))
    _close(ours(SENTENCES[1], top_k=None), ref(SENTENCES[1], top_k=None))
    _close(ours(SENTENCES, top_k=2), ref(SENTENCES, top_k=2))
    pair = {"text": SENTENCES[0], "text_pair": SENTENCES[1]}
    _close(ours(pair), ref(pair))
    for function in ("softmax", "sigmoid", "none"):
        _close(ours(SENTENCES[0], function_to_apply=function, top_k=None), ref(SENTENCES[0], function_to_apply=function, top_k=None))


def test_sentiment_alias_and_batching(ckpt):
    pipe = pipeline("sentiment-analysis", model=ckpt["bert-seq"], batch_size=3)
    assert type(pipe).__name__ == "TextClassificationPipeline"
    one = [pipe(s, top_k=None) for s in SENTENCES]
    _close(pipe(SENTENCES, top_k=None), one)
    _close(pipe(SENTENCES, top_k=None, batch_size=4), one)
    _close(pipe.run_batch(SENTENCES, top_k=None), one)
    assert pipe.input_length("I love this!") == len(pipe.tokenizer("I love this!")["input_ids"])


@pytest.mark.parametrize("name", ["bert-tok", "distil-tok"])
@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification_parity(ckpt, name, strategy):
    ours, ref = pipeline("ner", model=ckpt[name]), ref_pipe("token-classification", ckpt[name])
    for sentence in SENTENCES:
        for ignore in (None, []):
            kwargs = {"aggregation_strategy": strategy} if strategy != "none" else {}
            if ignore is not None:
                kwargs["ignore_labels"] = ignore
            _close(ours(sentence, **kwargs), ref(sentence, **kwargs))


def test_token_classification_batching_and_stride(ckpt):
    pipe = pipeline("token-classification", model=ckpt["bert-tok"], ignore_labels=[], aggregation_strategy="simple")
    one = [pipe(s) for s in SENTENCES]
    _close(pipe(SENTENCES, batch_size=4), one)
    long = " ".join(SENTENCES * 30)
    ref = ref_pipe("token-classification", ckpt["bert-tok"])
    pipe.tokenizer.model_max_length = ref.tokenizer.model_max_length = 64
    try:
        _close(pipe(long, stride=16, aggregation_strategy="first"), ref(long, stride=16, aggregation_strategy="first", ignore_labels=[]))
    finally:
        pipe.tokenizer.model_max_length = ref.tokenizer.model_max_length = 512


@pytest.mark.parametrize("strategy", ["none", "simple", "first"])
def test_token_classification_split_words(ckpt, strategy):
    ours = pipeline("token-classification", model=ckpt["bert-tok"])
    ref = ref_pipe("token-classification", ckpt["bert-tok"])
    words = ["Hugging", "Face", "is", "in", "Brooklynville", "!"]
    kwargs = {"is_split_into_words": True, "ignore_labels": [], "aggregation_strategy": strategy}
    _close(ours(words, **kwargs), ref(words, **kwargs))
    _close(ours(words, delimiter="_", **kwargs), ref(words, delimiter="_", **kwargs))
    batch = ours([words, words[:3]], batch_size=2, **kwargs)
    _close(batch, [ours(words, **kwargs)[0], ours(words[:3], **kwargs)[0]])
    _close(batch, ref([words, words[:3]], **kwargs))
    with pytest.raises(InputError, match="list of words"):
        ours("a string", is_split_into_words=True)


def test_feature_extraction_parity_and_pooling(ckpt, minilm_dir):
    ours = pipeline("feature-extraction", model=ckpt["bert-base"])
    ref = ref_pipe("feature-extraction", ckpt["bert-base"])
    _close(ours(SENTENCES[0]), ref(SENTENCES[0]))
    _close(ours(SENTENCES[:2]), ref(SENTENCES[:2]))
    _close(ours(SENTENCES, batch_size=4), [ours(s) for s in SENTENCES])

    # sentence-transformers' recipe: masked mean pooling, then L2 normalisation
    st = pipeline("feature-extraction", model=str(minilm_dir), pooling="mean", normalize=True, batch_size=2)
    vectors = torch.tensor(st(SENTENCES[:2]))
    model = transformers.AutoModel.from_pretrained(str(minilm_dir))
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(minilm_dir))
    batch = tokenizer(SENTENCES[:2], padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"][..., None].float()
    expected = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)
    assert vectors.shape == (2, 384)
    assert torch.allclose(vectors, expected, atol=1e-5)


def test_fill_mask_parity(ckpt):
    ours, ref = pipeline("fill-mask", model=ckpt["bert-mlm"]), ref_pipe("fill-mask", ckpt["bert-mlm"])
    one = "Paris is the [MASK] of France."
    two = "The [MASK] sat on the [MASK]."
    _close(ours(one), ref(one))
    _close(ours(two, top_k=3), ref(two, top_k=3))
    _close(ours([one]), ref([one]))
    _close(ours([one, two], batch_size=2), ref([one, two]))
    _close(ours(one, targets=["capital", "city", "zzzqqq"]), ref(one, targets=["capital", "city", "zzzqqq"]))
    with pytest.raises(InputError, match="mask token"):
        ours("no mask here")


def _qa_reference(folder, question, context, max_answer_len=15):
    """The best span by brute force over the reference model's logits (one window)."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(folder)
    enc = tokenizer(question, context, return_tensors="pt", return_offsets_mapping=True)
    enc.pop("offset_mapping")
    with torch.no_grad():
        out = model(**enc)
    seq = enc.sequence_ids(0)
    allowed = [i for i, s in enumerate(seq) if s == 1]
    mask = torch.full_like(out.start_logits[0], -10000.0)
    mask[allowed] = 0
    mask[0] = 0
    start = (out.start_logits[0].masked_fill(mask != 0, -10000.0)).softmax(-1)
    end = (out.end_logits[0].masked_fill(mask != 0, -10000.0)).softmax(-1)
    best = max(
        ((start[s] * end[e]).item(), s, e) for s in allowed for e in allowed if s <= e < s + max_answer_len
    )
    score, s, e = best
    words_s = enc.word_to_chars(enc.token_to_word(s), sequence_index=1)
    words_e = enc.word_to_chars(enc.token_to_word(e), sequence_index=1)
    return {"score": score, "start": words_s.start, "end": words_e.end, "answer": context[words_s.start : words_e.end]}


def test_question_answering(ckpt):
    pipe = pipeline("question-answering", model=ckpt["bert-qa"])
    question, context = "Where is Hugging Face based?", SENTENCES[0] + " " + SENTENCES[3]
    answer = pipe(question=question, context=context)
    _close(answer, _qa_reference(ckpt["bert-qa"], question, context))
    assert pipe({"question": question, "context": context}) == answer
    top = pipe(question=question, context=context, top_k=3)
    assert len(top) == 3 and top[0] == answer and top[0]["score"] >= top[1]["score"] >= top[2]["score"]
    for a in top:
        assert a["answer"] == context[a["start"] : a["end"]]
    impossible = pipe(question=question, context=context, handle_impossible_answer=True, top_k=1000)
    assert any(a["answer"] == "" for a in impossible)
    # a long context: several windows, answers still index the original context
    long_context = " ".join([context] * 40)
    windows = pipe(question=question, context=long_context, max_seq_len=64, doc_stride=16, top_k=2)
    for a in windows:
        assert a["answer"] == long_context[a["start"] : a["end"]]
    batched = pipe(question=[question, "Who says it?"], context=[context, context], batch_size=2)
    assert batched == [answer, pipe(question="Who says it?", context=context)]
    with pytest.raises(InputError, match="cannot be empty"):
        pipe(question="", context=context)
    with pytest.raises(InputError):
        pipe("just a string")


# Wide enough that the automatic choice packs a mixed-length batch (see modeling/attention.py).
WIDE_TEXT = {"vocab_size": 30522, "hidden_size": 256, "num_hidden_layers": 1, "num_attention_heads": 4,
             "intermediate_size": 1024}
WIDE_DISTIL = {"vocab_size": 30522, "dim": 256, "n_layers": 1, "n_heads": 4, "hidden_dim": 1024}


@pytest.fixture(scope="module")
def wide_ckpt(tmp_path_factory, minilm_dir):
    root = tmp_path_factory.mktemp("wide_pipelines")
    t = transformers
    ner = {"id2label": dict(enumerate(NER_LABELS)), "label2id": {l: i for i, l in enumerate(NER_LABELS)}}
    out = {}
    for name, cls, config in (
        ("bert-tok", t.BertForTokenClassification, t.BertConfig(**WIDE_TEXT, **ner)),
        ("distil-tok", t.DistilBertForTokenClassification, t.DistilBertConfig(**WIDE_DISTIL, **ner)),
        ("bert-qa", t.BertForQuestionAnswering, t.BertConfig(**WIDE_TEXT)),
        ("bert-mlm", t.BertForMaskedLM, t.BertConfig(**WIDE_TEXT)),
        ("bert-base", t.BertModel, t.BertConfig(**WIDE_TEXT)),
    ):
        torch.manual_seed(0)
        out[name] = _save(cls(config).eval(), root / name, minilm_dir)
    return out


@pytest.mark.parametrize("name", ["bert-tok", "distil-tok"])
def test_token_classification_skips_batch_padding(wide_ckpt, packed_calls, name):
    """Batched, the per-token pipelines run the encoder on the real tokens only (they never read
    a padded position), and still give the reference's entities."""
    ours, ref = pipeline("ner", model=wide_ckpt[name]), ref_pipe("token-classification", wide_ckpt[name])
    kwargs = {"ignore_labels": [], "aggregation_strategy": "simple"}
    batched = ours(SENTENCES, batch_size=4, **kwargs)
    assert packed_calls, "a mixed-length batch was not packed"
    _close(batched, [ref(sentence, **kwargs) for sentence in SENTENCES])


def test_feature_extraction_and_fill_mask_skip_batch_padding(wide_ckpt, packed_calls):
    ours, ref = pipeline("feature-extraction", model=wide_ckpt["bert-base"]), ref_pipe("feature-extraction", wide_ckpt["bert-base"])
    _close(ours(SENTENCES, batch_size=4), [ref(sentence) for sentence in SENTENCES])
    pooled = pipeline("feature-extraction", model=wide_ckpt["bert-base"], pooling="mean", normalize=True)
    _close(pooled(SENTENCES, batch_size=4), [pooled(sentence) for sentence in SENTENCES])
    features = len(packed_calls)
    assert features >= 2, "feature extraction did not pack its batches"
    masked = ["Paris is the [MASK] of France.", "The [MASK] sat.", SENTENCES[3] + " It was [MASK], " + SENTENCES[0]]
    fill, ref_fill = pipeline("fill-mask", model=wide_ckpt["bert-mlm"]), ref_pipe("fill-mask", wide_ckpt["bert-mlm"])
    _close(fill(masked, batch_size=3, top_k=3), [ref_fill(text, top_k=3) for text in masked])
    assert len(packed_calls) > features, "fill-mask did not pack its batch"


def test_question_answering_skips_batch_padding(wide_ckpt, packed_calls):
    pipe = pipeline("question-answering", model=wide_ckpt["bert-qa"])
    questions = ["Where is Hugging Face based?", "Who?", "What persisted, unbelievably, in the end?"]
    context = SENTENCES[0] + " " + SENTENCES[3]
    batched = pipe(question=questions, context=[context] * 3, batch_size=3)
    assert packed_calls, "a mixed-length batch was not packed"
    _close(batched, [pipe(question=q, context=context) for q in questions])
    _close(batched[0], _qa_reference(wide_ckpt["bert-qa"], questions[0], context))


# ----------------------------------------------------------------------------------------------
# Images
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["vit-cls", "resnet-cls"])
def test_image_classification_parity(ckpt, name, tmp_path):
    ours, ref = pipeline("image-classification", model=ckpt[name]), ref_pipe("image-classification", ckpt[name])
    images = [_image(0), _image(1, (64, 64)), _image(2, (33, 70))]
    path = tmp_path / "image.png"
    images[0].save(path)
    _close(ours(images[0]), ref(images[0]))
    _close(ours(str(path)), ref(str(path)))
    _close(ours(images, top_k=2), ref(images, top_k=2))
    _close(ours(images[1], function_to_apply="sigmoid", top_k=10), ref(images[1], function_to_apply="sigmoid", top_k=10))
    _close(ours(images, batch_size=3), [ours(image) for image in images])
    assert ours.input_length(images[0]) == 1


def test_image_feature_extraction(ckpt):
    image = _image(3)
    ours, ref = pipeline(model=ckpt["vit-base"]), ref_pipe("image-feature-extraction", ckpt["vit-base"])
    assert ours.task == "image-feature-extraction"
    _close(ours(image), ref(image))
    _close(ours(image, pool=True), ref(image, pool=True))
    backbone = pipeline(model=ckpt["resnet-backbone"])
    maps = backbone([image, _image(4)], batch_size=2)
    assert len(maps) == 2 and len(maps[0]) == 2
    assert np.array(maps[0][0]).shape == (1, 8, 8, 8) and np.array(maps[0][1]).shape == (1, 16, 4, 4)
    _close(maps[1], backbone(_image(4)))


# ----------------------------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------------------------


def test_audio_classification_parity(ckpt, tmp_path):
    import soundfile

    ours, ref = pipeline("audio-classification", model=ckpt["w2v-cls"]), ref_pipe("audio-classification", ckpt["w2v-cls"])
    speech = [_speech(0, 4000), _speech(1, 2500), _speech(2, 3333)]
    _close(ours(speech[0]), ref(speech[0]))
    _close(ours(speech[1], top_k=2), ref(speech[1], top_k=2))
    _close(ours({"raw": speech[2], "sampling_rate": 16000}), ref({"raw": speech[2], "sampling_rate": 16000}))
    _close(ours(speech, batch_size=3), [ours(s) for s in speech])
    path = tmp_path / "speech.wav"
    soundfile.write(path, speech[0], 16000, subtype="FLOAT")
    _close(ours(str(path)), ours(speech[0]))
    assert ours.input_length(speech[1]) == 2500 and ours.input_length(str(path)) == 4000
    assert len(ours(speech[0], top_k=None)) == 5
    # another rate is resampled to the extractor's (soxr here; the reference needs torchaudio)
    eight_k = ours.run_batch([{"raw": speech[0][::2].copy(), "sampling_rate": 8000}], top_k=None)[0]
    assert len(eight_k) == 5 and ours.input_length({"raw": speech[0][::2].copy(), "sampling_rate": 8000}) == 4000


def test_speech_recognition_parity(ckpt):
    ours = pipeline(model=ckpt["w2v-ctc"])
    assert ours.task == "automatic-speech-recognition"
    ref = ref_pipe("automatic-speech-recognition", ckpt["w2v-ctc"])
    speech = [_speech(5, 6000), _speech(6, 3000)]
    for s in speech:
        _close(ours(s), ref(s))
    _close(ours(speech, batch_size=2), [ours(s) for s in speech])
    assert isinstance(ours(speech[0])["text"], str)
    for kind in ("char", "word"):
        _close(ours(speech[0], return_timestamps=kind), ref(speech[0], return_timestamps=kind))
    with pytest.raises(InputError, match="return_timestamps"):
        ours(speech[0], return_timestamps=True)
    # long audio in overlapping windows
    long = _speech(7, 20000)
    for options in ({"chunk_length_s": 0.5}, {"chunk_length_s": 0.3, "stride_length_s": (0.05, 0.1)}):
        _close(ours(long, **options), ref(long, **options))
        _close(ours(long, return_timestamps="word", **options), ref(long, return_timestamps="word", **options))
    _close(ours([long, speech[0]], chunk_length_s=0.5, batch_size=2), [ours(long, chunk_length_s=0.5), ours(speech[0])])
    with pytest.raises(InputError, match="longer than"):
        ours(long, chunk_length_s=0.2, stride_length_s=0.1)


# ----------------------------------------------------------------------------------------------
# Factory, inference, errors
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, task",
    [
        ("bert-seq", "text-classification"),
        ("distil-tok", "token-classification"),
        ("bert-qa", "question-answering"),
        ("bert-mlm", "fill-mask"),
        ("bert-base", "feature-extraction"),
        ("vit-cls", "image-classification"),
        ("resnet-backbone", "image-feature-extraction"),
        ("w2v-cls", "audio-classification"),
        ("w2v-ctc", "automatic-speech-recognition"),
    ],
)
def test_task_inference(ckpt, name, task):
    config = json.loads((Path(ckpt[name]) / "config.json").read_text())
    assert infer_task(type("C", (), config)) == task


def test_loaded_model_device_and_dtype(ckpt):
    from leanformers import auto

    model = auto.AutoModelForSequenceClassification.from_pretrained(ckpt["bert-seq"])
    pipe = pipeline(model=model, device="cpu")
    assert isinstance(pipe, Pipeline) and pipe.task == "text-classification"
    _close(pipe(SENTENCES[0]), ref_pipe("text-classification", ckpt["bert-seq"])(SENTENCES[0]))
    half = pipeline("text-classification", model=ckpt["bert-seq"], dtype=torch.bfloat16, device=-1)
    assert half.model.dtype == torch.bfloat16
    assert half(SENTENCES[0])[0]["label"].startswith("LABEL_")


def test_errors(ckpt):
    with pytest.raises(UnsupportedModelError, match="sequence-classification"):  # a BERT cannot summarise
        pipeline("summarization", model=ckpt["bert-seq"])
    with pytest.raises(InputError, match="model="):
        pipeline("text-classification")
    pipe = pipeline("text-classification", model=ckpt["bert-seq"])
    for bad in (None, [], 42, [SENTENCES[0], None], ["a", "b", "c"][0:0]):
        with pytest.raises(InputError):
            pipe(bad)
    with pytest.raises(InputError, match="text_pair"):
        pipe([["a", "b"], ["c", "d"]])
    with pytest.raises(InputError, match="function_to_apply"):
        pipe("x", function_to_apply="relu")
    with pytest.raises(InputError, match="unknown option"):
        pipe("x", bogus=1)
    with pytest.raises(InputError, match="batch_size"):
        pipe(["x"], batch_size=0)
    with pytest.raises(InputError, match="device"):
        pipeline("text-classification", model=ckpt["bert-seq"], device=object())
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="device"):
            pipeline("text-classification", model=ckpt["bert-seq"], device="cuda")
    with pytest.raises(InputError, match="stride"):
        pipeline("ner", model=ckpt["bert-tok"])("x", stride=4, aggregation_strategy="none")
    image_pipe = pipeline("image-classification", model=ckpt["vit-cls"])
    with pytest.raises(InputError, match="No image file"):
        image_pipe("/no/such/image.png")
    with pytest.raises(InputError):
        image_pipe(42)
    audio_pipe = pipeline("audio-classification", model=ckpt["w2v-cls"])
    with pytest.raises(InputError, match="1-D"):
        audio_pipe(np.zeros((2, 100), dtype=np.float32))
    with pytest.raises(InputError, match="empty"):
        audio_pipe(np.zeros(0, dtype=np.float32))
    with pytest.raises(InputError, match="sampling_rate"):
        audio_pipe({"raw": np.zeros(100, dtype=np.float32)})
    with pytest.raises(UnsupportedModelError, match="Cannot infer"):
        infer_task(type("C", (), {"architectures": ["Wav2Vec2Model"], "model_type": "wav2vec2"}))


def test_pipelines_stay_light_and_never_load_reference(ckpt):
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from leanformers.pipelines import pipeline\n"
        "print('torch' in sys.modules)\n"
        f"pipeline(model={ckpt['bert-seq']!r})('hello')\n"
        "print(any(k == 'transformers' or k.startswith('transformers.') for k in sys.modules))\n"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    assert out.stdout.split() == ["False", "False"]
