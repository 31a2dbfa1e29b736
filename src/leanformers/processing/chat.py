"""Chat templates: a conversation rendered by the checkpoint's jinja2 template, as the reference does.

Templates come from the hub and are untrusted code, so they run in jinja2's immutable sandbox, and
everything they see is first rebuilt from plain JSON-like values (no caller object with methods of
its own reaches them). jinja2 is imported only when a template is compiled.
"""

from __future__ import annotations

import contextvars
import dataclasses
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from ..errors import InputError, LeanformersError, TokenizerError

# The reference's names for a message's reasoning; the first is the one templates read.
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")
# Appended to the message being continued, so that its end can be found in the rendered text.
_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "
# While a render tracks assistant spans: (the blocks yielded so far, the spans found).
_TRACKING: contextvars.ContextVar[tuple[list[str], list[tuple[int, int]]] | None] = contextvars.ContextVar(
    "chat_tracking", default=None
)
_MIN_JINJA = (3, 1, 6)  # older releases have known sandbox escapes


def select_template(own: str | dict[str, str] | None, chat_template: str | None, tools: Any) -> str:
    """The template text to render: a name among the tokenizer's templates, a literal template, or
    the tokenizer's own (its "tool_use" one when tools are given, else its "default")."""
    if isinstance(own, dict):
        if chat_template is not None:
            return own.get(chat_template, chat_template)
        if tools is not None and "tool_use" in own:
            return own["tool_use"]
        if "default" in own:
            return own["default"]
        raise TokenizerError(
            f"This tokenizer has several chat templates and none is named 'default': pass chat_template= with one "
            f"of {sorted(own)} or a template of your own."
        )
    if chat_template is not None:
        return chat_template
    if own is None:
        raise TokenizerError(
            "This tokenizer has no chat template (tokenizer.chat_template is not set, and there is no default one): "
            "pass chat_template= with a jinja template, or set tokenizer.chat_template."
        )
    return own


def apply_chat_template(
    tokenizer: Any, conversation: Sequence[Any], tools: Sequence[Any] | None = None,
    documents: Sequence[Mapping[str, Any]] | None = None, chat_template: str | None = None,
    add_generation_prompt: bool = False, continue_final_message: bool | str = False, tokenize: bool = True,
    sanitize_control_tokens: bool = False, padding: bool | str = False, truncation: bool = False,
    max_length: int | None = None, return_tensors: str | None = None, return_dict: bool = True,
    return_assistant_tokens_mask: bool = False, tokenizer_kwargs: Mapping[str, Any] | None = None, **kwargs: Any,
) -> Any:
    """Render ``conversation`` (a list of messages, or a batch of such lists) with the tokenizer's chat
    template and, with ``tokenize``, encode it; see :meth:`PreTrainedTokenizer.apply_chat_template`."""
    if not tokenize:
        return_dict = False
    if return_assistant_tokens_mask and not (return_dict and tokenize):
        raise InputError("return_assistant_tokens_mask=True needs return_dict=True and tokenize=True.")
    if sanitize_control_tokens:
        raise InputError(
            "sanitize_control_tokens=True is not supported: check user text for control tokens before rendering."
        )
    template = select_template(tokenizer.chat_template, chat_template, tools)
    if not isinstance(template, str):
        raise InputError(f"chat_template must be a jinja template string or a template name, got {template!r}.")
    if isinstance(conversation, (list, tuple)) and not conversation:
        raise InputError("The conversation is empty: give at least one message.")
    batched = isinstance(conversation, (list, tuple)) and (
        isinstance(conversation[0], (list, tuple)) or hasattr(conversation[0], "messages")
    )
    conversations = [_messages(chat) for chat in (conversation if batched else [conversation])]
    if continue_final_message:
        if add_generation_prompt:
            raise InputError(
                "continue_final_message and add_generation_prompt cannot both be set: continue the last message, "
                "or start a new assistant message."
            )
        if return_assistant_tokens_mask:
            raise InputError("continue_final_message cannot be used with return_assistant_tokens_mask.")

    variables = {**tokenizer.special_tokens_map, **kwargs}  # the caller's values win
    rendered, spans = render(
        conversations, template, tools=tools, documents=documents, add_generation_prompt=add_generation_prompt,
        continue_final_message=continue_final_message, track_assistant=return_assistant_tokens_mask, **variables,
    )
    text = rendered if batched else rendered[0]
    if not tokenize:
        return text
    out = tokenizer(
        text, padding=padding, truncation=truncation, max_length=max_length, add_special_tokens=False,
        return_tensors=return_tensors, **(tokenizer_kwargs or {}),
    )
    if not return_dict:
        return out["input_ids"]
    if return_assistant_tokens_mask:
        out["assistant_masks"] = _assistant_masks(out, spans, batched, return_tensors)
    return out


def _messages(chat: Any) -> list[dict[str, Any]]:
    """A conversation's messages without the keys set to None (APIs send ``content=None``, which
    templates would print)."""
    messages = getattr(chat, "messages", chat)
    if not isinstance(messages, (list, tuple)):
        raise InputError(f"A conversation must be a list of messages, got {type(messages).__name__}.")
    for message in messages:
        if not isinstance(message, Mapping):
            raise InputError(
                f"Each message must be a dict such as {{'role': 'user', 'content': '...'}}, got {message!r}."
            )
    return [{key: value for key, value in message.items() if value is not None} for message in messages]


def render(
    conversations: Sequence[Sequence[Mapping[str, Any]]], template: str, *, tools: Sequence[Any] | None = None,
    documents: Sequence[Mapping[str, Any]] | None = None, add_generation_prompt: bool = False,
    continue_final_message: bool | str = False, track_assistant: bool = False, **variables: Any,
) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """Each conversation rendered by ``template``, and (with ``track_assistant``) the character spans
    of its ``{% generation %}`` blocks."""
    compiled = _compile(template)
    if tools is not None:
        for tool in tools:
            if not isinstance(tool, Mapping):
                raise InputError(
                    f"Tools must be given as JSON schemas (dicts with 'type' and 'function'), got "
                    f"{type(tool).__name__}; converting Python functions to schemas is not supported."
                )
    if documents is not None:
        for document in documents:
            if not isinstance(document, Mapping):
                raise InputError("Documents must be a list of dicts, each with 'title' and 'text' keys.")
    tools, documents, variables = _plain(tools), _plain(documents), _plain(variables)

    rendered, all_spans = [], []
    for chat in conversations:
        chat = _with_reasoning_aliases(_plain(list(chat)))
        final = None
        if continue_final_message:
            final = _tag_final_message(chat, template, continue_final_message)
        context = dict(
            messages=chat, tools=tools, documents=documents, add_generation_prompt=add_generation_prompt, **variables
        )
        blocks: list[str] = []
        spans: list[tuple[int, int]] = []
        token = _TRACKING.set((blocks, spans) if track_assistant else None)
        try:
            # One block at a time: the generation tag measures the text so far while rendering.
            for block in compiled.generate(**context):
                blocks.append(block)  # noqa: PERF402
        finally:
            _TRACKING.reset(token)
        text = "".join(blocks)
        if final is not None:
            text = _cut_at_tag(text, final)
        rendered.append(text)
        all_spans.append(spans)
    return rendered, all_spans


def _tag_final_message(chat: list[dict[str, Any]], template: str, field: bool | str) -> str:
    """Mark the end of the message to continue; returns its text (before the mark)."""
    if not chat:
        raise InputError("continue_final_message is set but the conversation is empty.")
    field = field if isinstance(field, str) else "content"
    final = chat[-1].get(field)
    if final is None:
        raise InputError(f"continue_final_message is set but the final message has no {field!r} to continue.")
    fields = [field]
    if field in _REASONING_FIELDS:  # reasoning is kept under several names: tag each copy
        fields = [name for name in _REASONING_FIELDS if chat[-1].get(name) == final]
    if not any(name in template for name in fields):
        raise InputError(f"continue_final_message names {field!r}, which this chat template never reads.")
    if isinstance(final, (list, tuple)):
        for block in reversed(final):
            if isinstance(block, dict) and "text" in block:
                final, block["text"] = block["text"], block["text"] + _CONTINUE_TAG
                return final
        raise InputError("continue_final_message is set but the final message has no text block to continue.")
    for name in fields:
        chat[-1][name] = chat[-1][name] + _CONTINUE_TAG
    return final


def _cut_at_tag(text: str, final: str) -> str:
    """The rendered text up to the continued message's end. A template that strips the message also
    drops the tag's space; the message's own trailing spaces then go too, as in the reference."""
    tag = _CONTINUE_TAG.strip()
    if str(final).strip() not in text or tag not in text:
        raise InputError(
            "continue_final_message is set but the final message does not appear in the rendered chat: the template "
            f"removes part of it. Final message: {str(final).strip()!r}; rendered chat: {text!r}"
        )
    at = text.rindex(tag)
    return text[:at] if text[at:at + len(_CONTINUE_TAG)] == _CONTINUE_TAG else text[:at].rstrip()


def _with_reasoning_aliases(chat: list[Any]) -> list[Any]:
    """Reasoning given under any of its names is also passed as ``reasoning_content`` and (for
    gpt-oss templates) ``thinking``."""
    out = []
    for message in chat:
        if isinstance(message, dict):
            reasoning = next((message[key] for key in _REASONING_FIELDS if message.get(key) is not None), None)
            if reasoning is not None:
                message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


def _plain(value: Any) -> Any:
    """``value`` rebuilt from plain JSON-like types. Rich objects (arrays, images, tensors) have
    methods the sandbox does not know to be dangerous, so they become a placeholder naming their type:
    templates only test whether such keys are present."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):  # subclasses (enums, ...) may bring methods: back to the base type
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return _plain(value.item())  # numpy scalars: np.bool_(False) must stay falsy
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):  # pydantic models
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


def _assistant_masks(out: Any, spans: list[list[tuple[int, int]]], batched: bool, return_tensors: str | None) -> Any:
    """1 on the tokens of the template's ``{% generation %}`` blocks, per row."""
    ids = out["input_ids"] if batched or return_tensors else [out["input_ids"]]
    masks = []
    for row, row_spans in enumerate(spans):
        mask = [0] * len(ids[row])
        for start, end in row_spans:
            first, last = out.char_to_token(row, start), out.char_to_token(row, end - 1)
            if first is None:  # truncated away
                break
            for position in range(first, last + 1 if last else len(ids[row])):
                mask[position] = 1
        masks.append(mask)
    if return_tensors:  # converted by the tokenizer's own output class, as its other fields were
        return type(out)({"assistant_masks": masks}, tensor_type=return_tensors)["assistant_masks"]
    return masks if batched else masks[0]


def _raise_exception(message: str) -> None:
    raise InputError(f"The chat template refused this conversation: {message}")


def _tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None,
            sort_keys: bool = False) -> str:
    # jinja's own filter escapes HTML characters, which chat templates must not do.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


class _TemplateDict:
    """``dict(...)`` and ``dict.fromkeys`` for templates, without the type itself (whose attributes
    lead to Python internals)."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
        return dict.fromkeys(*args, **kwargs)


@lru_cache(maxsize=64)
def _compile(template: str) -> Any:
    try:
        import jinja2
        import jinja2.ext
        from jinja2 import nodes
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError as exc:
        raise TokenizerError("Chat templates need jinja2: pip install 'jinja2>=3.1.6'.") from exc
    version = tuple(int(part) for part in jinja2.__version__.split(".")[:3] if part.isdigit())
    if version < _MIN_JINJA:
        raise TokenizerError(
            f"Chat templates need jinja2>=3.1.6 (older releases have sandbox escapes); found {jinja2.__version__}. "
            f"Upgrade with pip install -U jinja2."
        )

    class Namespace(jinja2.utils.Namespace):
        """jinja's namespace, refusing underscore names (the way to CPython internals)."""

        def __init__(*args: Any, **kwargs: Any) -> None:  # jinja's signature, so namespace(self=...) works
            self, attrs = args[0], dict(*args[1:], **kwargs)
            for name in attrs:
                Namespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            Namespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(f"a namespace attribute may not start with '_' ({name!r})")

    class GenerationTag(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}``: marks assistant text, for return_assistant_tokens_mask."""

        tags = frozenset({"generation"})

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return nodes.CallBlock(self.call_method("_track"), [], [], body).set_lineno(lineno)

        def _track(self, caller: Any) -> str:
            text = caller()
            tracking = _TRACKING.get()
            if tracking is not None:
                start = len("".join(tracking[0]))
                tracking[1].append((start, start + len(text)))
            return text

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals.update(
        raise_exception=_raise_exception, strftime_now=_strftime_now, dict=_TemplateDict(), namespace=Namespace
    )
    try:
        return _Compiled(env.from_string(template), jinja2.exceptions)
    except jinja2.exceptions.TemplateSyntaxError as exc:
        raise TokenizerError(f"The chat template is not valid jinja (line {exc.lineno}): {exc.message}") from exc


class _Compiled:
    """A compiled template whose rendering failures become the library's errors."""

    def __init__(self, template: Any, exceptions: Any) -> None:
        self._template, self._exceptions = template, exceptions

    def generate(self, **context: Any) -> Any:
        errors = self._exceptions
        try:
            yield from self._template.generate(**context)
        except errors.SecurityError as exc:
            raise TokenizerError(
                f"The chat template tried to reach something the sandbox forbids ({exc}); it was stopped. "
                f"Do not use this template."
            ) from exc
        except errors.UndefinedError as exc:
            raise InputError(f"The chat template could not render this conversation: {exc.message}") from exc
        except errors.TemplateError as exc:
            raise TokenizerError(f"The chat template failed: {exc.message}") from exc
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, ZeroDivisionError) as exc:
            if isinstance(exc, LeanformersError):
                raise
            raise InputError(
                f"The chat template could not render this conversation ({type(exc).__name__}: {exc}). Check that "
                f"messages, tools and documents have the shape the template expects."
            ) from exc


__all__ = ["apply_chat_template", "render", "select_template"]
