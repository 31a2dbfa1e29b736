"""The seed's AutoFeatureExtractor block, offline, on an XLSR speech-emotion layout.

The checkpoint id resolves through a hub cache the test lays out; its model is a tiny random
wav2vec2 with the XLSR settings of ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition
(stable layer norm, layer-norm feature encoder, attention mask returned). The seed reads the
audio with librosa; leanformers' ``load_audio`` takes its place (librosa is not a dependency).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile
import torch
import transformers

from conftest import make_hub_cache

REPO = "ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition"
PREPROCESSOR = {
    "do_normalize": True, "feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1,
    "padding_side": "right", "padding_value": 0.0, "return_attention_mask": True, "sampling_rate": 16000,
}
EMOTIONS = ["angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised"]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    pytest.importorskip("leanformers.models.wav2vec2")
    root = tmp_path_factory.mktemp("seed-audio")
    work = root / "work"
    work.mkdir()
    torch.manual_seed(0)
    config = transformers.Wav2Vec2Config(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        conv_dim=(16, 16, 16), conv_kernel=(10, 3, 3), conv_stride=(5, 2, 2), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, do_stable_layer_norm=True, feat_extract_norm="layer",
        classifier_proj_size=16, id2label=dict(enumerate(EMOTIONS)),
    )
    model_dir = work / "model"
    transformers.Wav2Vec2ForSequenceClassification(config).save_pretrained(model_dir)
    (work / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR))
    cache = root / "hub"
    make_hub_cache(cache, REPO, {"config.json": model_dir / "config.json",
                                 "model.safetensors": model_dir / "model.safetensors",
                                 "preprocessor_config.json": work / "preprocessor_config.json"})
    t = np.arange(int(44100 * 0.8)) / 44100
    speech = 0.3 * np.sin(2 * np.pi * 220 * t) * np.exp(-t) + 0.01 * np.random.default_rng(0).normal(size=t.size)
    soundfile.write(work / "temp_audio.flac", speech.astype(np.float32), 44100)
    return cache, work, model_dir


def test_feature_extractor_block_and_logits(hub):
    cache, work, model_dir = hub
    code = textwrap.dedent(f"""
        from leanformers import AutoFeatureExtractor, AutoModelForAudioClassification
        from leanformers.processing.audio import load_audio
        import torch

        feature_extractor = AutoFeatureExtractor.from_pretrained("{REPO}")

        audio = load_audio("temp_audio.flac", sampling_rate=16000)
        sample_rate = 16000

        inputs = feature_extractor(audio, sampling_rate=sample_rate, return_tensors="pt", padding=True)
        print(f'inputs: {{inputs}}')

        model = AutoModelForAudioClassification.from_pretrained("{REPO}")
        with torch.no_grad():
            logits = model(**inputs).logits
        torch.save(logits, "ours.pt")
        torch.save(dict(inputs), "inputs.pt")
        print(model.config.id2label[int(logits.argmax(-1))])
    """)
    env = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=work, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("inputs: {'input_values': tensor([[")
    assert "'attention_mask': tensor([[1, 1, 1,  ..., 1, 1, 1]], dtype=torch.int32)}" in out.stdout
    assert out.stdout.strip().splitlines()[-1] in EMOTIONS

    inputs = torch.load(work / "inputs.pt")
    assert inputs["input_values"].shape[1] == int(np.ceil(44100 * 0.8 * 16000 / 44100))
    ref_model = transformers.Wav2Vec2ForSequenceClassification.from_pretrained(model_dir).eval()
    with torch.no_grad():
        ref_logits = ref_model(input_values=inputs["input_values"], attention_mask=inputs["attention_mask"]).logits
    torch.testing.assert_close(torch.load(work / "ours.pt"), ref_logits, rtol=1e-5, atol=1e-5)
