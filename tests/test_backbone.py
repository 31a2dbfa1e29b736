"""The shared out_features / out_indices mechanism, against the reference's rules."""

from __future__ import annotations

import pytest
import transformers

from leanformers.errors import ConfigError
from leanformers.modeling.backbone import align_out_features

STAGES = ["stem", "stage1", "stage2", "stage3", "stage4"]

VALID = [
    (None, None),
    (None, [1]),
    (None, (1,)),
    (None, [-1]),
    (None, [0, 2, 4]),
    (None, [-3, -1]),
    (["stem"], None),
    (["stage1", "stage3"], None),
    (["stage2"], [2]),
]
INVALID = [
    (None, [5]),
    (None, [-6]),
    (None, [2, 1]),
    (None, [1, 1]),
    (None, [1, -4]),
    (["stage9"], None),
    (["stage3", "stage1"], None),
    (["stage1", "stage1"], None),
    (["stage1"], [2]),
    ("stage1", None),
]


def reference(out_features, out_indices):
    config = transformers.ResNetConfig(depths=[1, 1, 1, 1], hidden_sizes=[4, 4, 4, 4],
                                       out_features=out_features, out_indices=out_indices)
    assert config.stage_names == STAGES
    return config.out_features, config.out_indices


@pytest.mark.parametrize("out_features, out_indices", VALID)
def test_valid_choices_match_reference(out_features, out_indices):
    features, indices = align_out_features(STAGES, out_features, out_indices)
    ref_features, ref_indices = reference(out_features, out_indices)
    assert features == list(ref_features)
    assert indices == list(ref_indices)


@pytest.mark.parametrize("out_features, out_indices", INVALID)
def test_invalid_choices_raise_our_error(out_features, out_indices):
    with pytest.raises(ConfigError) as info:
        align_out_features(STAGES, out_features, out_indices)
    message = str(info.value)
    assert "stage" in message or "out_" in message
    with pytest.raises(Exception):
        reference(out_features, out_indices)


def test_needs_stage_names():
    with pytest.raises(ConfigError, match="stage_names"):
        align_out_features([], None, None)


@pytest.mark.parametrize("model_type", ["swin", "resnet"])
def test_assigning_one_choice_realigns_the_other(model_type):
    from leanformers import AutoConfig

    config = AutoConfig.for_model(model_type, out_features=["stage3"])
    assert config.out_indices == [3]
    config.out_indices = (1,)
    assert config.out_features == ["stage1"] and config.out_indices == [1]
    config.out_features = ["stem", "stage4"]
    assert config.out_indices == [0, 4]
    with pytest.raises(ConfigError):
        config.out_indices = (9,)
