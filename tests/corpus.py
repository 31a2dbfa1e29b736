"""A deterministic test corpus for tokenizer parity: ``texts(n, seed)``.

Every text is built from a seeded ``random.Random``, so two calls with the same arguments give the
same list on any machine. The mix aims at what tokenizers get wrong: accents (composed and
combining), emoji with modifiers and joiners, CJK and Hangul, code, runs of spaces, tabs and
newlines, texts thousands of characters long, empty or blank strings, punctuation clusters and
literal special tokens of the common vocabularies.
"""

from __future__ import annotations

import random

_ENGLISH = (
    "the of and to in is was for on that with as by at from his her they this which it be are "
    "language model tokenizer transformer attention layer embedding vector training data running "
    "jumped happily unbelievable reorganization internationalization misunderstanding Paris London "
    "don't won't it's we're they've I'm O'Brien McDonald's iPhone eBay NASA U.S.A. e.g. i.e. etc."
).split()
_ACCENTED = (
    "café naïve résumé coöperate façade jalapeño Ångström Øresund Æsir Straße Œuvre ñandú pingüino "
    "Zürich São Kraków Reykjavík CAFÉ RÉSUMÉ e\u0301cole a\u0308rger n\u0303 ﬁle ＡＢＣ １２３ ² ½ Ⅻ ①"
).split()
_EMOJI = "😀 😃 👍🏽 👨‍👩‍👧‍👦 🇺🇸 🤗 ♥ ★ ☃ ✓ ∞ ≠ 🎉🎉 🙂‍↔️ 🏳️‍🌈".split()
_CJK = "中文 你好 世界 北京 東京 日本語 こんにちは カタカナ 臺灣 𠀀𠀁 漢字テスト 我们今天去".split()
_KOREAN = "안녕하세요 세계 한국어 서울 감사합니다 토크나이저 테스트 ㄱㄴㄷ".split()
_OTHER_SCRIPTS = "Ελληνικά Русский Ёлка עברית العربية नमस्ते ภาษาไทย".split()
_PUNCT = list(".,!?;:-()[]{}'\"…«»„“”‘’—–/\\@#$%^&*_~`|<>+=") + ["...", "?!", "!!!", "--", "'s", "''"]
_NUMBERS = "0 1 42 3.14 2024 1,000 10% $5 #1 -7 1e10 0x1F €100 £50 ¥1000".split()
_SPECIAL = "<s> </s> <pad> <unk> <mask> [CLS] [SEP] [MASK] [PAD] [UNK] <|endoftext|>".split()
_SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", " \t ", " \n ", "\u00a0", "\u3000", "\u200b"]
_CODE = [
    "def f(x):\n    return x ** 2 if x > 0 else -x  # comment\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
    'print("hello, world")\n',
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    "<html><body><p class='x'>Hello</p></body></html>",
    "import torch\nx = torch.zeros(3, 4)\t# tabs\n\n\n",
    "    indented    with    four    spaces",
    "if a == b and c != d:\n        pass\n",
    "https://huggingface.co/docs/transformers/index?query=bert&lang=en#section-2",
    "path\\to\\windows\\file.txt and /unix/path/file",
]
_FIXED = [
    "", " ", "  ", "\t", "\n", "\r\n", " \t \n ", "\u00a0", "\u200b", ".", "a", "A", "!!!???...",
    "Hello, world!", "Hello  world", " leading space", "trailing space ", "  both  ", "a\tb\nc",
    "<s>", "</s>", "<mask>", "a <mask> b", "<s>Hello</s>", " <mask>", "<mask> ", "[CLS] x [SEP]",
    "x" * 300, "word " * 400, "supercalifragilisticexpialidocious" * 5,
]
_KINDS = ["english", "accents", "emoji", "cjk", "korean", "code", "whitespace", "punct", "mixed", "long"]


def _word(rng: random.Random, kind: str) -> str:
    if kind == "mixed":
        kind = rng.choice(["english", "english", "accents", "emoji", "cjk", "korean", "punct", "other"])
    pool = {
        "english": _ENGLISH,
        "accents": _ACCENTED,
        "emoji": _EMOJI,
        "cjk": _CJK,
        "korean": _KOREAN,
        "punct": _PUNCT,
        "other": _OTHER_SCRIPTS,
    }.get(kind, _ENGLISH)
    word = rng.choice(pool)
    roll = rng.random()
    if roll < 0.1:
        word = word.upper()
    elif roll < 0.2:
        word = word.capitalize()
    elif roll < 0.25:
        word = rng.choice(_NUMBERS)
    elif roll < 0.27:
        word = rng.choice(_SPECIAL)
    return word


def _text(rng: random.Random, kind: str) -> str:
    if kind == "code":
        return "".join(rng.choice(_CODE) for _ in range(rng.randint(1, 3)))
    if kind == "whitespace":
        parts = [rng.choice(_SPACES) if rng.random() < 0.5 else _word(rng, "mixed") for _ in range(rng.randint(0, 12))]
        return "".join(parts)
    if kind == "long":
        # thousands of characters: several paragraphs of mixed words
        length = rng.randint(400, 1200)
        return "".join(_word(rng, "mixed") + rng.choice(_SPACES[:3] + [" "] * 6) for _ in range(length))
    count = rng.choice([1, 2, 3, 5, 8, 13, 21, 40])
    separators = [" "] * 8 + _SPACES
    parts = []
    for _ in range(count):
        parts.append(_word(rng, kind))
        if rng.random() < 0.15:
            parts.append(rng.choice(_PUNCT))
        parts.append(rng.choice(separators))
    text = "".join(parts)
    return text if rng.random() < 0.7 else text.strip()


def texts(n: int = 2000, seed: int = 0) -> list[str]:
    """``n`` texts (the fixed edge cases first, then seeded generated ones); same arguments, same list."""
    rng = random.Random(seed)
    out = list(_FIXED[:n])
    while len(out) < n:
        # long texts are rare so that a 2,000-text batch stays quick to tokenize
        kind = "long" if rng.random() < 0.02 else rng.choice(_KINDS[:-1])
        out.append(_text(rng, kind))
    return out
