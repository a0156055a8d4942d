"""Corpora that cannot be trained on are refused with one line, before any model is built."""

from __future__ import annotations

import pytest

from tests.conftest import TINY_TEXT, run_cli
from tests.train.test_corpora import cli

TINY = ["--hidden", "8", "--embedding", "4", "--layers", "1", "--steps", "2", "--name", "x", "-q"]


@pytest.mark.parametrize("content,expected", [
    (b"", "is empty"),
    (b" \n\t\n", "is empty"),
    (b"ALICE:\nhello\x00\x01\x02", "looks binary (a NUL byte at byte offset 12)"),
    ("ALICE:\nhello\n".encode() + "café\n".encode("latin-1"),
     "is not UTF-8: invalid byte 0xe9 at byte offset 16 (line 3)"),
    (b"\xff\xfeA\x00L\x00", "looks binary"),  # UTF-16 is not UTF-8: its NUL bytes give it away
], ids=["empty", "blank", "binary", "latin-1", "utf-16"])
def test_unusable_text_is_refused(tmp_path, capsys, content, expected):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    code, out, err = cli(capsys, "train", str(path), *TINY)
    assert code == 1
    assert err.startswith("error: ") and expected in err and len(err.strip().splitlines()) == 1


def test_a_folder_is_refused(tmp_path, capsys):
    code, _, err = cli(capsys, "train", str(tmp_path), *TINY)
    assert code == 1 and "is a folder" in err


def test_too_small_for_the_sequence_length(tmp_path, capsys):
    path = tmp_path / "short.txt"
    path.write_text("ALICE:\nA short speech, too short to learn from.\n" * 3, encoding="utf-8")
    code, _, err = cli(capsys, "train", str(path), *TINY, "--seq-len", "128")
    assert code == 1
    assert "is too small for --seq-len 128" in err and "use a smaller --seq-len or a larger text" in err


def test_too_small_for_the_batch(capsys):
    # 6,299 training characters: enough for one window of 64, not for 128 streams of 65
    code, _, err = cli(capsys, "train", str(TINY_TEXT), *TINY, "--seq-len", "64", "--batch-size", "128")
    assert code == 1
    assert "is too small for --seq-len 64 and --batch-size 128" in err
    assert "128 streams of 65 need 8,321" in err and "--batch-size" in err
    code, _, err = cli(capsys, "train", str(TINY_TEXT), *TINY, "--seq-len", "64", "--batch-size", "128",
                       "--no-carry-state")
    assert code == 0, err  # random windows may overlap: one window's worth of text is enough


def test_refusal_through_the_real_entry_point_has_no_traceback(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("naïve\n".encode("latin-1"))
    r = run_cli("train", str(path), *TINY)
    assert r.returncode == 1
    assert r.stderr == f"error: {path} is not UTF-8: invalid byte 0xef at byte offset 2 (line 1); convert it, " \
                       "e.g. iconv -f latin1 -t utf-8\n"
    assert not (tmp_path / "home").exists() or not list((tmp_path / "home").rglob("*.safetensors"))


def test_a_malformed_escape_in_the_chat_options_is_a_usage_error(capsys):
    for option in ("--chat-stop", "--chat-template"):
        code, _, err = cli(capsys, "train", str(TINY_TEXT), *TINY, option, "C:\\Users\\{text}\\x")
        assert code == 2 and "Traceback" not in err, err
        assert "\\\\" in err  # it says how to write a backslash
