"""Texts the tokenizer parity tests run through both libraries.

Hand-written cases cover what breaks tokenizers (accents, CJK, emoji, control and zero-width
characters, words longer than WordPiece's 100-character limit, empty and blank strings, URLs,
numbers, literal special tokens); a seeded generator adds mixed text so the corpus passes 500
strings. Everything is deterministic.
"""

from __future__ import annotations

import random

HAND_WRITTEN: list[str] = [
    "In a hole in the ground there lived a hobbit.",
    "",
    " ",
    "   ",
    "\t",
    "\n",
    "\r\n",
    " \t \n ",
    "a",
    "A",
    "Hello, world!",
    "HELLO WORLD",
    "hElLo WoRlD",
    "The quick brown fox jumps over the lazy dog.",
    "don't won't can't it's we're they've I'm",
    "Mr. Smith paid $3.50 for 2.5 kg of apples (approx. 40% off) on 12/25/2023.",
    "1234567890",
    "3.14159265358979323846264338327950288419716939937510",
    "-42 +17 1e10 0x1F 1,000,000 50%",
    "Visit https://huggingface.co/docs/transformers/index?query=bert&lang=en#section-2 now",
    "mailto:someone@example.com, ftp://files.example.org/pub/file.tar.gz",
    "www.example.com/path/to/page.html",
    "Email me at first.last+tag@sub.domain.co.uk!",
    "@user #hashtag $TICKER ^caret &amp; *star* _under_ ~tilde~ `code`",
    "!!!???...,,,;;;:::",
    "«guillemets» „quotes“ “curly” ‘single’ — em-dash – en-dash … ellipsis",
    "(parentheses) [brackets] {braces} <angles>",
    "café naïve résumé coöperate façade jalapeño",
    "CAFÉ NAÏVE RÉSUMÉ",
    "Ångström Øresund Æsir ß Straße Œuvre",
    "ñandú pingüino corazón acción",
    "Ελληνικά κείμενα με τόνους",
    "Русский текст с Ёлкой и ЙОГУРТОМ",
    "עברית עם ניקוד: שָׁלוֹם",
    "العربية: مرحبا بالعالم",
    "हिन्दी: नमस्ते दुनिया",
    "ภาษาไทย สวัสดีชาวโลก",
    "한국어: 안녕하세요 세계",
    "日本語: こんにちは世界、カタカナもある。",
    "中文：你好，世界！我们今天去北京。",
    "繁體中文：臺灣的天氣很好",
    "Mixed 中文 and English 混合 text",
    "𠀀𠀁𠀂 rare CJK extension B",
    "emoji 😀😃😄 test 👍🏽 family 👨‍👩‍👧‍👦 flag 🇺🇸",
    "🤗 Transformers 🤗",
    "♥ ★ ☃ ☂ ♫ ✓ ✗ ∞ ≠ ≤ ≥ ± × ÷",
    "math: ∑_{i=1}^n x_i = ∫ f(x) dx, α β γ δ ε",
    "zero\u200bwidth\u200cjoiner\u200dmarks",
    "soft\u00adhyphen and non\u00a0breaking space",
    "\ufeffbyte order mark at start",
    "bidi \u202eoverride\u202c marks \u200f",
    "control\x00chars\x01here\x07bell\x1bescape",
    "tab\tseparated\tvalues",
    "line one\nline two\r\nline three\rline four",
    "vertical\x0btab and form\x0cfeed",
    "replacement \ufffd char",
    "combining: e\u0301 a\u0308 o\u0302 n\u0303",
    "fullwidth ＡＢＣ １２３ ！？",
    "ligatures: ﬁ ﬂ ﬀ ﬃ",
    "superscripts ² ³ ¹ and fractions ½ ¼ ¾",
    "roman Ⅻ circled ① ② ③",
    "[CLS] literal special tokens [SEP] in the [MASK] text [PAD] [UNK]",
    "[cls] lowercase [sep] lookalikes [mask]",
    "##not a continuation ##",
    "a" * 100,
    "b" * 101,
    "supercalifragilisticexpialidocious" * 4,
    "x" * 250 + " short",
    "antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
    "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch",
    "word " * 200,
    "The model was trained on 1.2B tokens; evaluation F1=0.913 (±0.004).",
    "C++ C# F# .NET Node.js Vue.js TCP/IP I/O",
    "def f(x): return x**2 if x > 0 else -x  # comment",
    '{"key": "value", "list": [1, 2, 3], "nested": {"a": null}}',
    "<html><body><p class='x'>Hello</p></body></html>",
    "SELECT * FROM users WHERE id = 42 AND name LIKE '%bob%';",
    "path\\to\\windows\\file.txt and /unix/path/file",
    "ALL CAPS SENTENCE WITH ACRONYMS LIKE NASA, FBI AND UNESCO.",
    "iPhone eBay YouTube McDonald's O'Brien",
    "Dr. Martin Luther King Jr. was born on Jan. 15, 1929.",
    "U.S.A. U.K. e.g. i.e. etc. vs.",
    "3rd 21st 100th 1st-class 2nd-hand",
    "Temperature: -5°C / 23°F, humidity 80%",
    "Price: €100, £50, ¥1000, ₹500, ₿0.01",
    "hyphenated-words and under_scored_words and camelCaseWords",
    "repeated!!!!! punctuation?????",
    "....",
    "---",
    "a.b.c.d.e.f",
    "Tokenization's edge-cases: (nested (parentheses)) [and [brackets]]",
    "The END.",
]

PAIRS: list[tuple[str, str]] = [
    ("What is the capital of France?", "Paris is the capital and most populous city of France."),
    ("How old is the universe?", "About 13.8 billion years, according to current estimates."),
    ("", "The first text is empty."),
    ("The second text is empty.", ""),
    ("", ""),
    ("   ", "\t"),
    ("café", "CAFÉ"),
    ("你好", "世界"),
    ("emoji 😀", "more emoji 🤗👍"),
    ("a" * 150, "short"),
    ("short", "b" * 150),
    ("word " * 80, "another " * 60),
    ("one two three four five six seven eight nine ten", "eleven twelve"),
    ("[CLS] in a pair", "[SEP] in the second"),
    ("URL https://example.com/a?b=c", "numbers 1,234.56"),
]

_WORDS = (
    "the of and to in is was for on that with as by at from his her they this which "
    "language model tokenizer transformer attention layer embedding vector training data "
    "running jumped happily unbelievable reorganization internationalization misunderstanding "
    "Paris London Tokyo Zürich São Paulo München Kraków Reykjavík "
    "42 3.14 2024 1,000 10% $5 #1 @home "
    "café naïve résumé 東京 北京 서울 😀 🤗 ✓"
).split()
_PUNCT = [".", ",", "!", "?", ";", ":", "-", "(", ")", "'", '"', "…"]


def _generated(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        n = rng.choice([1, 2, 3, 5, 8, 13, 21, 40, 90])
        parts = []
        for _ in range(n):
            word = rng.choice(_WORDS)
            roll = rng.random()
            if roll < 0.15:
                word = word.upper()
            elif roll < 0.3:
                word = word.capitalize()
            parts.append(word)
            if rng.random() < 0.12:
                parts.append(rng.choice(_PUNCT))
        separator = rng.choice([" ", " ", " ", "  ", "\t", "\n"])
        texts.append(separator.join(parts))
    return texts


CORPUS: list[str] = HAND_WRITTEN + [a for a, _ in PAIRS] + [b for _, b in PAIRS] + _generated(440, seed=1234)

GENERATED_PAIRS: list[tuple[str, str]] = list(zip(_generated(60, seed=99), _generated(60, seed=7)))
ALL_PAIRS: list[tuple[str, str]] = PAIRS + GENERATED_PAIRS

# Pre-split words for is_split_into_words (whitespace split, as NER datasets store them).
SPLIT_WORDS: list[list[str]] = [text.split() for text in CORPUS[:200]] + [[], ["single"], ["Ünïcödé", "中文", "😀"]]
