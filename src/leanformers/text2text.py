"""The sequence-to-sequence text pipelines: text2text-generation, summarization and translation.

The reference library dropped these three in its version 5; they keep the call shape and outputs
they had in version 4, over this library's ``generate``:

- ``pipe("text")`` gives ``[{"generated_text": ...}]`` (``summary_text``, ``translation_text``), one
  dict per returned sequence; a list of texts gives one dict per text (a list per text when several
  sequences are returned); ``return_tensors=True`` gives ``..._token_ids`` instead.
- A model's ``task_specific_params`` for the task (T5's ``summarize: `` prefix and its beam settings,
  say) apply under the call's own settings; ``config.prefix`` is put before every text.
- ``translation_xx_to_yy`` names the languages; ``src_lang`` / ``tgt_lang`` may be given instead.
Texts run in batches, longest first, and come back in input order.
"""

from __future__ import annotations

from typing import Any

from .errors import InputError, UnsupportedModelError
from .pipelines import _ANY, _FLAG, Pipeline, _check_text, _describe, _must

_LANGUAGE = _must("a language code string", lambda v: isinstance(v, str) and bool(v))


class Text2TextGenerationPipeline(Pipeline):
    """``pipe("question: ... context: ...")`` -> ``[{"generated_text": ...}]``."""

    task = "text2text-generation"
    return_name = "generated"
    options = {
        "return_tensors": (_FLAG, False), "return_text": (_FLAG, False),
        "clean_up_tokenization_spaces": (_FLAG, False), "truncation": (_ANY, False),
        "prefix": (_must("a string", lambda v: isinstance(v, str)), False),
        "generation_config": (_ANY, False),
    }

    @classmethod
    def check_model(cls, model: Any) -> None:
        if not getattr(model.config, "is_encoder_decoder", False) or not callable(getattr(model, "generate", None)):
            raise UnsupportedModelError(
                f"The {cls.task} pipeline needs an encoder-decoder model that generates (AutoModelForSeq2SeqLM, "
                f"e.g. T5ForConditionalGeneration or BartForConditionalGeneration); got {type(model).__name__}."
            )

    def __init__(self, model: Any, *args: Any, **kwargs: Any) -> None:
        self.check_model(model)
        super().__init__(model, *args, **kwargs)
        if self.tokenizer is None:
            raise InputError(f"The {self.task} pipeline needs a tokenizer: pass tokenizer=.")

    def _task_key(self, params: dict[str, Any]) -> str:
        """The key of this task in ``config.task_specific_params``."""
        return self.task

    def _parameters(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        from .modeling.generation import FIELDS, GenerationConfig

        settings = {name: kwargs.pop(name) for name in FIELDS if name in kwargs}
        unknown = sorted(set(kwargs) - set(self.options))
        if unknown:
            raise InputError(
                f"The {self.task} pipeline got unknown argument(s) {unknown}: they are neither its options "
                f"({', '.join(sorted(self.options))}) nor generation settings (GenerationConfig fields such as "
                "max_new_tokens, num_beams, no_repeat_ngram_size, length_penalty)."
            )
        params = super()._parameters(kwargs)
        GenerationConfig(**settings)  # a wrong value is refused now, naming the setting
        config = params.get("generation_config")
        if config is not None and not isinstance(config, GenerationConfig):
            raise InputError(f"generation_config must be a leanformers GenerationConfig, got {_describe(config)}.")
        return {**params, **settings}

    def _check_item(self, item: Any, params: dict[str, Any]) -> Any:
        return _check_text(item, self.task)

    def _task_settings(self, params: dict[str, Any]) -> dict[str, Any]:
        specific = getattr(self.model.config, "task_specific_params", None) or {}
        settings = specific.get(self._task_key(params)) or {}
        return settings if isinstance(settings, dict) else {}

    def _prefix(self, params: dict[str, Any]) -> str:
        for prefix in (params.get("prefix"), self._task_settings(params).get("prefix"),
                       getattr(self.model.config, "prefix", None)):
            if isinstance(prefix, str):
                return prefix
        return ""

    def _encode(self, texts: list[str], params: dict[str, Any]) -> dict[str, Any]:
        prefix = self._prefix(params)
        options: dict[str, Any] = {"truncation": params.get("truncation", False), "return_tensors": "pt"}
        if len(texts) > 1:
            if self.tokenizer.pad_token_id is None:
                raise InputError(
                    f"The {self.task} pipeline batches texts with padding, but this tokenizer has no pad token: "
                    "set tokenizer.pad_token or pass batch_size=1."
                )
            options["padding"] = True
        encoded = self.tokenizer([prefix + text for text in texts], **options)
        return {"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]}

    def input_length(self, item: Any) -> int:
        text = self._check_item(item, self._defaults)
        return len(self.tokenizer(self._prefix(self._defaults) + text)["input_ids"])

    def _batch_order(self, items: list[Any], batch_size: int, params: dict[str, Any]) -> list[int]:
        if batch_size == 1 or len(items) == 1:
            return list(range(len(items)))
        prefix = self._prefix(params)
        lengths = [len(self.tokenizer(prefix + item)["input_ids"]) for item in items]
        return sorted(range(len(items)), key=lambda i: -lengths[i])

    def _generate_kwargs(self, params: dict[str, Any]) -> dict[str, Any]:
        """The task's settings from the model config, under the call's (and a generation_config's)."""
        from .modeling.generation import FIELDS

        kwargs = {k: v for k, v in self._task_settings(params).items() if k in FIELDS}
        if params.get("generation_config") is not None:
            kwargs = {"generation_config": params["generation_config"]}
        kwargs.update({name: params[name] for name in FIELDS if name in params})
        if kwargs.get("stop_strings") is not None:
            kwargs["tokenizer"] = self.tokenizer
        return kwargs

    def _run(self, items: list[Any], params: dict[str, Any]) -> list[Any]:
        import torch

        inputs = self._encode(items, params)
        with torch.inference_mode():
            output = self.model.generate(
                inputs["input_ids"].to(self.device), attention_mask=inputs["attention_mask"].to(self.device),
                **self._generate_kwargs(params),
            ).cpu()
        per_item = output.shape[0] // len(items)
        return [[self._record(ids, params) for ids in output[i * per_item:(i + 1) * per_item].tolist()]
                for i in range(len(items))]

    def _record(self, ids: list[int], params: dict[str, Any]) -> dict[str, Any]:
        if params.get("return_tensors") and not params.get("return_text"):
            return {f"{self.return_name}_token_ids": ids}
        options = {"skip_special_tokens": True}
        if "clean_up_tokenization_spaces" in params:
            options["clean_up_tokenization_spaces"] = params["clean_up_tokenization_spaces"]
        return {f"{self.return_name}_text": self.tokenizer.decode(ids, **options)}

    def _shape(self, results: list[Any], items: list[Any], single: bool, params: dict[str, Any]) -> Any:
        if single:
            return results[0]
        # As version 4: a list of texts with one sequence each gives one dict per text.
        return [result[0] for result in results] if all(len(result) == 1 for result in results) else results


class SummarizationPipeline(Text2TextGenerationPipeline):
    """``pipe(article)`` -> ``[{"summary_text": ...}]``."""

    task = "summarization"
    return_name = "summary"


class TranslationPipeline(Text2TextGenerationPipeline):
    """``pipe("How old are you?")`` -> ``[{"translation_text": ...}]``; the languages come from a
    ``translation_xx_to_yy`` task name or from ``src_lang`` / ``tgt_lang`` (which pick T5's prompt in
    ``task_specific_params``)."""

    task = "translation"
    return_name = "translation"
    options = {**Text2TextGenerationPipeline.options, "src_lang": (_LANGUAGE, False), "tgt_lang": (_LANGUAGE, False)}

    def _task_key(self, params: dict[str, Any]) -> str:
        if params.get("src_lang") and params.get("tgt_lang"):
            return f"translation_{params['src_lang']}_to_{params['tgt_lang']}"
        return self.task


__all__ = ["SummarizationPipeline", "Text2TextGenerationPipeline", "TranslationPipeline"]
