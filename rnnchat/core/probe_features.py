"""Features of a text, one value per character, that single cells may track (torch-free).

Every feature describes the text *after its character has been read*, which is
what the state at that character can know: after a newline the position in the
line is 0, after an opening quote the text is inside quotes.

Built-in features follow Karpathy, Johnson and Fei-Fei (2015); CJK texts get two
more (the verse position and "the next character is a punctuation mark"). A user
feature ``NAME=REGEX`` is 1 on every character inside a match, else 0.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np

from rnnchat.core.errors import RnnchatError

FEATURE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,31}$")
MAX_USER_FEATURES = 32
CJK_SHARE = 0.3  # a text whose letters are at least this share CJK ideographs gets the CJK features
CJK_PUNCT = set("，。？！；：、,.?!;:")
QUOTES = {'"': '"', "\u201c": "\u201d", "\u2018": "\u2019", "「": "」", "『": "』", "«": "»"}
OPEN_BRACKETS, CLOSE_BRACKETS = set("([{（【《〈"), set(")]}）】》〉")


@dataclass(frozen=True)
class Feature:
    name: str
    description: str
    values: np.ndarray  # float32 [T]


def _positions_since(text: str, resets) -> np.ndarray:
    out = np.empty(len(text), np.float32)
    p = 0
    for k, ch in enumerate(text):
        p = 0 if ch in resets else p + 1
        out[k] = p
    return out


def in_quotes(text: str) -> np.ndarray:
    out = np.zeros(len(text), np.float32)
    closing = None
    for k, ch in enumerate(text):
        if closing is not None and ch == closing:
            closing = None
        elif closing is None and ch in QUOTES:
            closing = QUOTES[ch]
        elif ch == "\n" and k + 1 < len(text) and text[k + 1] == "\n":
            closing = None  # a quote never runs over a blank line
        out[k] = closing is not None
    return out


def bracket_depth(text: str) -> np.ndarray:
    out = np.zeros(len(text), np.float32)
    depth = 0
    for k, ch in enumerate(text):
        if ch in OPEN_BRACKETS:
            depth += 1
        elif ch in CLOSE_BRACKETS:
            depth = max(depth - 1, 0)
        out[k] = depth
    return out


def speaker_line(text: str) -> np.ndarray:
    """1 on the characters of a line such as ``ROMEO:`` or ``KING RICHARD III:``."""
    out = np.zeros(len(text), np.float32)
    start = 0
    for line in text.split("\n"):
        body = line[:-1]
        if line.endswith(":") and any(c.isalpha() for c in body) and body == body.upper():
            out[start:start + len(line)] = 1
        start += len(line) + 1
    return out


def after_newline(text: str) -> np.ndarray:
    return np.array([k > 0 and text[k - 1] == "\n" for k in range(len(text))], np.float32)


def vowel(text: str) -> np.ndarray:
    return np.array([unicodedata.normalize("NFD", c)[:1].lower() in "aeiou" for c in text], np.float32)


def before_punctuation(text: str) -> np.ndarray:
    return np.array([k + 1 < len(text) and text[k + 1] in CJK_PUNCT for k in range(len(text))], np.float32)


def is_cjk(text: str) -> bool:
    letters = [c for c in text[:20000] if c.isalpha()]
    cjk = sum(1 for c in letters if "\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff")
    return bool(letters) and cjk / len(letters) >= CJK_SHARE


def builtin_features(text: str) -> list[Feature]:
    feats = [
        Feature("line_position", "position in the line (characters since the newline)",
                _positions_since(text, "\n")),
        Feature("since_space", "characters since the last space or newline", _positions_since(text, " \n\t")),
        Feature("in_quotes", "inside quotes", in_quotes(text)),
        Feature("bracket_depth", "depth inside brackets or parentheses", bracket_depth(text)),
        Feature("speaker_line", "on a speaker line in upper case ending in ':'", speaker_line(text)),
        Feature("after_newline", "first character after a newline", after_newline(text)),
        Feature("vowel", "a vowel", vowel(text)),
    ]
    if is_cjk(text):
        feats += [Feature("verse_position", "position in the verse (characters since punctuation or newline)",
                          _positions_since(text, CJK_PUNCT | {"\n"})),
                  Feature("before_punct", "the next character is a punctuation mark", before_punctuation(text))]
    return feats


def parse_user_feature(spec: str) -> tuple[str, re.Pattern]:
    """``NAME=REGEX`` -> (name, compiled pattern), or a one-line RnnchatError."""
    name, sep, pattern = spec.partition("=")
    if not sep or not FEATURE_NAME.match(name):
        raise RnnchatError(f"--feature {spec[:60]!r}: write NAME=REGEX, NAME of letters, digits, '_' or '-' "
                           "(at most 32, starting with a letter)")
    if not pattern:
        raise RnnchatError(f"--feature {name}: the regular expression is empty")
    try:
        return name, re.compile(pattern)
    except re.error as exc:
        raise RnnchatError(f"--feature {name}: invalid regular expression: {exc}") from None


def regex_feature(text: str, name: str, pattern: re.Pattern) -> Feature:
    values = np.zeros(len(text), np.float32)
    for m in pattern.finditer(text):
        values[m.start():m.end()] = 1
    return Feature(name, f"inside a match of /{pattern.pattern}/", values)


def all_features(text: str, user_specs=()) -> list[Feature]:
    feats = builtin_features(text)
    if len(user_specs) > MAX_USER_FEATURES:
        raise RnnchatError(f"at most {MAX_USER_FEATURES} --feature options")
    names = {f.name for f in feats}
    for spec in user_specs:
        name, pattern = parse_user_feature(spec)
        if name in names:
            raise RnnchatError(f"--feature {name}: that name is already taken (built-in or given twice)")
        names.add(name)
        feats.append(regex_feature(text, name, pattern))
    return feats
