"""Chat templates against the reference (transformers 5.23): rendered strings and token ids must be equal.

Each template is written, in the style of a real model's, into a copy of the real MiniLM tokenizer
folder with the template's control tokens as special tokens, and both libraries load that folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from leanformers.errors import InputError, LeanformersError, TokenizerError
from leanformers.processing.tokenizer import load_tokenizer

transformers = pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

CHATML_QWEN = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

LLAMA3 = """{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not tools_in_user_message is defined %}
    {%- set tools_in_user_message = true %}
{%- endif %}
{%- if not date_string is defined %}
    {%- if strftime_now is defined %}
        {%- set date_string = strftime_now("%d %b %Y") %}
    {%- else %}
        {%- set date_string = "26 Jul 2024" %}
    {%- endif %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}

{#- This block extracts the system message, so we can slot it into the right place. #}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}

{#- System message #}
{{- "<|start_header_id|>system<|end_header_id|>\\n\\n" }}
{%- if tools is not none %}
    {{- "Environment: ipython\\n" }}
{%- endif %}
{{- "Cutting Knowledge Date: December 2023\\n" }}
{{- "Today Date: " + date_string + "\\n\\n" }}
{%- if tools is not none and not tools_in_user_message %}
    {{- "You have access to the following functions. To call a function, please respond with JSON for a function call." }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}

{#- Custom tools are passed in a user message with some extra guidance #}
{%- if tools_in_user_message and not tools is none %}
    {%- if messages | length != 0 %}
        {%- set first_user_message = messages[0]['content']|trim %}
        {%- set messages = messages[1:] %}
    {%- else %}
        {{- raise_exception("Cannot put tools in the first user message when there's no first user message!") }}
{%- endif %}
    {{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}
    {{- "Given the following functions, please respond with a JSON for a function call " }}
    {{- "with its proper arguments that best answers the given prompt.\\n\\n" }}
    {{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}
    {{- "Do not use variables.\\n\\n" }}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\\n\\n" }}
    {%- endfor %}
    {{- first_user_message + "<|eot_id|>"}}
{%- endif %}

{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("This model only supports single tool-calls at once!") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\\n\\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}
{%- endif %}
"""

SMOLLM2 = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\n"
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

GEMMA = (
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
    "{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}"
)

MISTRAL = (
    "{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token}}"
    "{% else %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}{% endfor %}"
)

# Command-R style grounded generation: documents, loop controls and tojson's options.
RAG = """{{ bos_token }}{% for doc in documents %}
    {% if loop.index0 > 2 %}{% break %}{% endif %}
    {% if not doc.text %}
        {% continue %}
    {% endif %}
Document: {{ loop.index0 }}
title: {{ doc.title }}
text: {{ doc.text }}
meta: {{ doc | tojson(indent=2, sort_keys=True) }}
{% endfor %}
{% for message in messages %}<|{{ message.role }}|>{{ message.content | tojson(separators=(',', ':')) }}
{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"""

# SmolLM3-style {% generation %} blocks around assistant text.
GENERATION = (
    "{% for message in messages %}<|im_start|>{{ message.role }}\n{% if message.role == 'assistant' %}"
    "{% generation %}{{ message.content }}<|im_end|>{% endgeneration %}{% else %}{{ message.content }}<|im_end|>"
    "{% endif %}\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CHATML_TOKENS = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "extra": ["<tool_call>", "</tool_call>"]}
FAMILIES = {
    "qwen2.5": (CHATML_QWEN, CHATML_TOKENS),
    "llama3": (LLAMA3, {
        "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "extra": ["<|start_header_id|>", "<|end_header_id|>"],
    }),
    "smollm2": (SMOLLM2, CHATML_TOKENS),
    "gemma": (GEMMA, {"bos_token": "<bos>", "eos_token": "<eos>", "extra": ["<start_of_turn>", "<end_of_turn>"]}),
    "mistral": (MISTRAL, {"bos_token": "<s>", "eos_token": "</s>", "extra": ["[INST]", "[/INST]"]}),
    "named": ({"default": SMOLLM2, "tool_use": CHATML_QWEN, "rag": RAG}, CHATML_TOKENS),
    "generation": (GENERATION, CHATML_TOKENS),
    "none": (None, {}),
}

CHAT = [
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "Paris. Ünïcode façade 🚀 stays as is."},
    {"role": "user", "content": "And of Germany? "},
]
SYSTEM_CHAT = [{"role": "system", "content": "You are terse. "}, *CHAT]
PREFILL = [*CHAT, {"role": "assistant", "content": "Berlin is "}]
TOOLS = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather <b>in</b> a city, in °C",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "The city"},
                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}]
TOOL_CHAT = [
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
    {"role": "tool", "content": "22"},
    {"role": "assistant", "content": "It is 22 °C."},
    {"role": "user", "content": "Thanks"},
]
DOCUMENTS = [
    {"title": "Tour Eiffel", "text": "A tower in Paris.", "year": 1889},
    {"title": "Empty", "text": ""},
    {"title": "Louvre", "text": "A museum <in> Paris."},
    {"title": "Never shown", "text": "cut by break"},
]


@pytest.fixture(scope="session")
def pairs(tmp_path_factory, minilm_dir):
    """name -> (ours, reference), each family's folder built and loaded once."""
    cache = {}

    def get(name):
        if name not in cache:
            template, tokens = FAMILIES[name]
            folder = tmp_path_factory.mktemp(name)
            for file in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
                shutil.copy(minilm_dir / file, folder / file)
            config = json.loads((folder / "tokenizer_config.json").read_text())
            config.update({key: value for key, value in tokens.items() if key != "extra"})
            if tokens.get("extra"):
                config["extra_special_tokens"] = tokens["extra"]
            if isinstance(template, dict):
                config["chat_template"] = [{"name": key, "template": text} for key, text in template.items()]
            elif template is not None:
                (folder / "chat_template.jinja").write_text(template, encoding="utf-8")
            (folder / "tokenizer_config.json").write_text(json.dumps(config))
            cache[name] = (load_tokenizer(str(folder)), transformers.AutoTokenizer.from_pretrained(str(folder)))
        return cache[name]

    return get


def assert_same(ours, ref):
    if isinstance(ref, (str, list)):
        assert type(ours) is type(ref)
        assert ours == ref
        return
    assert sorted(ours.keys()) == sorted(ref.keys())
    for key in ref:
        if isinstance(ref[key], torch.Tensor):
            assert isinstance(ours[key], torch.Tensor) and ours[key].dtype == ref[key].dtype, key
            assert torch.equal(ours[key], ref[key]), key
        elif isinstance(ref[key], np.ndarray):
            assert isinstance(ours[key], np.ndarray) and ours[key].dtype == ref[key].dtype, key
            assert np.array_equal(ours[key], ref[key]), key
        else:
            assert ours[key] == ref[key], key


def check(pairs, name, conversation, **options):
    ours, ref = pairs(name)
    expected = ref.apply_chat_template(conversation, **options)
    got = ours.apply_chat_template(conversation, **options)
    assert_same(got, expected)
    return got


@pytest.mark.parametrize("name", ["qwen2.5", "llama3", "smollm2", "gemma", "mistral", "named"])
@pytest.mark.parametrize("generation_prompt", [False, True])
@pytest.mark.parametrize("tokenize", [False, True])
def test_templates_match_reference(pairs, name, generation_prompt, tokenize):
    got = check(pairs, name, CHAT, add_generation_prompt=generation_prompt, tokenize=tokenize, date_string="1 Jan 2025")
    if not tokenize:
        assert "Germany?" in got


@pytest.mark.parametrize("name", ["qwen2.5", "llama3", "smollm2"])
def test_system_message_and_ids_without_dict(pairs, name):
    check(pairs, name, SYSTEM_CHAT, tokenize=False, date_string="1 Jan 2025")
    ids = check(pairs, name, SYSTEM_CHAT, return_dict=False, add_generation_prompt=True, date_string="1 Jan 2025")
    assert isinstance(ids, list) and all(isinstance(i, int) for i in ids)


@pytest.mark.parametrize("name", ["qwen2.5", "llama3"])
@pytest.mark.parametrize("tokenize", [False, True])
def test_tools(pairs, name, tokenize):
    text = check(pairs, name, TOOL_CHAT, tools=TOOLS, tokenize=tokenize, add_generation_prompt=True,
                 date_string="1 Jan 2025")
    if not tokenize:
        assert "get_weather" in text and "°C" in text and "<b>in</b>" in text  # tojson: no ascii/html escaping


def test_llama3_template_options(pairs):
    # tools in the system message, with tojson(indent=4); and today's date through strftime_now
    check(pairs, "llama3", CHAT, tools=TOOLS, tools_in_user_message=False, tokenize=False, date_string="2 Feb 2024")
    text = check(pairs, "llama3", CHAT, tokenize=False)
    assert "Today Date: " in text and "26 Jul 2024" not in text


@pytest.mark.parametrize("name", ["qwen2.5", "smollm2", "gemma", "llama3", "mistral"])
@pytest.mark.parametrize("tokenize", [False, True])
def test_continue_final_message(pairs, name, tokenize):
    text = check(pairs, name, PREFILL, continue_final_message=True, tokenize=tokenize, date_string="1 Jan 2025")
    if not tokenize:
        assert text.rstrip().endswith("Berlin is")


def test_continue_final_message_named_field(pairs):
    chat = [*CHAT, {"role": "assistant", "content": [{"type": "text", "text": "Berlin"}]}]
    template = "{% for m in messages %}{{ m.role }}: {{ m.content[0].text if m.content is not string else m.content }}\n{% endfor %}"
    check(pairs, "smollm2", chat, chat_template=template, continue_final_message=True, tokenize=False)
    reasoning = [*CHAT, {"role": "assistant", "content": "", "reasoning": "Let me think"}]
    think = "{% for m in messages %}{{ m.role }}:{% if m.reasoning_content %}<think>{{ m.reasoning_content }}</think>{% endif %}{{ m.content }}\n{% endfor %}"
    text = check(pairs, "smollm2", reasoning, chat_template=think, continue_final_message="reasoning_content",
                 tokenize=False)
    assert text.endswith("<think>Let me think")


def test_batch_padded_tensors(pairs):
    batch = [CHAT, SYSTEM_CHAT[:2], [{"role": "user", "content": "Hi"}]]
    check(pairs, "qwen2.5", batch, tokenize=False, add_generation_prompt=True)
    check(pairs, "qwen2.5", batch, add_generation_prompt=True)
    out = check(pairs, "qwen2.5", batch, add_generation_prompt=True, return_tensors="pt", padding=True)
    assert out["input_ids"].shape[0] == 3 and out["attention_mask"][2].sum() < out["attention_mask"][0].sum()
    check(pairs, "llama3", batch[:2], return_tensors="pt", padding="max_length", max_length=200, date_string="x",
          tokenizer_kwargs={"padding_side": "left"})
    check(pairs, "smollm2", batch, truncation=True, max_length=12, return_tensors="np", padding=True)


def test_named_templates(pairs):
    text = check(pairs, "named", CHAT, tokenize=False)  # "default"
    assert "SmolLM" in text
    text = check(pairs, "named", CHAT, tools=TOOLS, tokenize=False)  # "tool_use" when tools are given
    assert "<tools>" in text
    text = check(pairs, "named", CHAT, chat_template="rag", documents=DOCUMENTS, tokenize=False,
                 add_generation_prompt=True)
    assert "Louvre" in text and "Never shown" not in text and '"year": 1889' in text
    check(pairs, "named", CHAT, chat_template="rag", documents=DOCUMENTS, add_generation_prompt=True)
    literal = "{% for m in messages %}[{{ m.role | upper }}] {{ m.content }} {{ eos_token }}{% endfor %}"
    check(pairs, "named", CHAT, chat_template=literal, tokenize=False)
    check(pairs, "none", CHAT, chat_template=literal, tokenize=False)


def test_extra_template_variables_override_special_tokens(pairs):
    template = "{{ bos_token }}|{{ greeting }}|{{ flags | tojson }}|{% for m in messages %}{{ m.content }}{% endfor %}"
    text = check(pairs, "gemma", CHAT, chat_template=template, tokenize=False, greeting="hé", flags={"b": [1, 2.5]})
    assert text.startswith("<bos>|hé|")
    text = check(pairs, "gemma", CHAT, chat_template=template, tokenize=False, bos_token="<start>", greeting=1, flags=None)
    assert text.startswith("<start>|1|null|")


def test_assistant_tokens_mask(pairs):
    out = check(pairs, "generation", CHAT, return_assistant_tokens_mask=True)
    assert 0 < sum(out["assistant_masks"]) < len(out["input_ids"])
    check(pairs, "generation", [CHAT, CHAT[:2]], return_assistant_tokens_mask=True, padding=True, return_tensors="pt")


def test_template_errors_are_ours(pairs):
    ours, ref = pairs("gemma")
    system = [{"role": "system", "content": "x"}, *CHAT]
    with pytest.raises(Exception, match="System role not supported"):
        ref.apply_chat_template(system)
    with pytest.raises(InputError, match="System role not supported"):
        ours.apply_chat_template(system)
    ours, ref = pairs("mistral")
    with pytest.raises(InputError, match="must alternate"):
        ours.apply_chat_template([CHAT[0], CHAT[0]], tokenize=False)
    with pytest.raises(InputError, match="Only user and assistant"):
        ours.apply_chat_template([CHAT[0], {"role": "tool", "content": "x"}], tokenize=False)
    ours, _ = pairs("llama3")
    with pytest.raises(InputError, match="single tool-calls"):
        ours.apply_chat_template([{"role": "assistant", "content": "", "tool_calls": [{}, {}]}], tokenize=False)


def test_bad_calls(pairs):
    ours, ref = pairs("none")
    with pytest.raises(Exception, match="chat_template is not set"):
        ref.apply_chat_template(CHAT)
    with pytest.raises(TokenizerError, match="no chat template"):
        ours.apply_chat_template(CHAT)
    ours, _ = pairs("smollm2")
    with pytest.raises(InputError, match="empty"):
        ours.apply_chat_template([])
    with pytest.raises(InputError, match="must be a dict"):
        ours.apply_chat_template(["hello"])
    with pytest.raises(InputError, match="cannot both be set"):
        ours.apply_chat_template(PREFILL, continue_final_message=True, add_generation_prompt=True)
    with pytest.raises(InputError, match="JSON schemas"):
        ours.apply_chat_template(CHAT, tools=[len])
    with pytest.raises(InputError, match="list of dicts"):
        ours.apply_chat_template(CHAT, documents=["text"])
    with pytest.raises(InputError, match="never reads"):
        ours.apply_chat_template([*CHAT, {"role": "assistant", "reasoning_content": "hm"}], continue_final_message="reasoning_content")
    with pytest.raises(InputError, match="needs return_dict"):
        ours.apply_chat_template(CHAT, return_dict=False, return_assistant_tokens_mask=True)
    with pytest.raises(TokenizerError, match="not valid jinja"):
        ours.apply_chat_template(CHAT, chat_template="{% for m in messages %}")
    with pytest.raises(InputError, match="could not render"):
        ours.apply_chat_template([{"role": "user"}], chat_template="{{ messages[0].content.upper() }}")
    ours._chat_backup, ours.chat_template = ours.chat_template, {"a": SMOLLM2, "b": SMOLLM2}
    try:
        with pytest.raises(TokenizerError, match=r"none is named 'default'.*\['a', 'b'\]"):
            ours.apply_chat_template(CHAT)
        assert ours.apply_chat_template(CHAT, chat_template="b", tokenize=False).startswith("<|im_start|>system")
    finally:
        ours.chat_template = ours._chat_backup


@pytest.mark.parametrize("template", [
    "{{ namespace(_secret=1) }}",
    "{% set ns = namespace() %}{% set ns.__class__ = 1 %}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ messages.__class__.__init__.__globals__['os'].system('echo pwned') }}",
    "{{ dict.__call__.__globals__ }}{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ messages.append({'role': 'x'}) }}",
])
def test_sandbox_escapes_raise_our_errors(pairs, template):
    ours, _ = pairs("smollm2")
    with pytest.raises(LeanformersError):
        ours.apply_chat_template(CHAT, chat_template=template, tokenize=False)


def test_jinja2_is_imported_lazily():
    code = "import sys, leanformers; from leanformers.processing import chat; print('jinja2' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
