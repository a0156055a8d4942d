"""``rnnchat probe`` on tiny models: features, regex features, text selection, the HTML page, one-line errors."""

import hashlib
import json
import os
import re

import numpy as np
import pytest

from rnnchat.cli import _run
from rnnchat.commands.probe_html import colour, render, write_page
from rnnchat.commands.probe_report import safe
from rnnchat.core.errors import CorpusError, RnnchatError
from rnnchat.core.probe_features import all_features, builtin_features, is_cjk, regex_feature
from rnnchat.core.vocab import Vocab
from tests.conftest import run_cli


@pytest.fixture
def probe(capsys, one_torch_thread):
    def run(*args):
        code = _run(["probe", *map(str, args)])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def values(feats, name):
    return next(f.values for f in feats if f.name == name).tolist()


def test_builtin_features_describe_the_text_after_each_character():
    text = 'ROMEO:\nSay "hi" (now)\n'
    feats = builtin_features(text)
    assert values(feats, "line_position")[:9] == [1, 2, 3, 4, 5, 6, 0, 1, 2]
    assert values(feats, "speaker_line") == [1] * 6 + [0] * (len(text) - 6)
    quotes = values(feats, "in_quotes")
    assert quotes[text.index('"'):text.rindex('"') + 1] == [1, 1, 1, 0]  # in after the opening, out after the closing
    assert values(feats, "bracket_depth")[text.index("("):text.index(")") + 1] == [1, 1, 1, 1, 0]
    assert values(feats, "after_newline")[7] == 1 and sum(values(feats, "after_newline")) == 1
    assert values(feats, "vowel")[:5] == [0, 1, 0, 1, 1]
    assert values(feats, "since_space")[text.index("Say") + 3] == 0
    assert not is_cjk(text) and "verse_position" not in {f.name for f in feats}


def test_cjk_texts_get_verse_position_and_before_punctuation():
    text = "秦川雄帝宅，函谷壯皇居。\n"
    feats = builtin_features(text)
    assert is_cjk(text)
    assert values(feats, "verse_position")[:7] == [1, 2, 3, 4, 5, 0, 1]
    assert values(feats, "before_punct")[:6] == [0, 0, 0, 0, 1, 0]


def test_regex_features_mark_every_character_inside_a_match():
    f = regex_feature("a cat sat", "at", re.compile(r"[cs]at"))
    assert f.values.tolist() == [0, 0, 1, 1, 1, 0, 1, 1, 1]
    feats = all_features("ab ab", ["bee=b", "pair=a.?"])
    assert values(feats, "bee") == [0, 1, 0, 0, 1] and values(feats, "pair") == [1, 1, 0, 1, 1]


@pytest.mark.parametrize("spec,match", [("noequals", "NAME=REGEX"), ("1x=a", "NAME=REGEX"),
                                        ("x=(", "invalid regular expression"), ("vowel=a", "already taken"),
                                        ("x=", "empty")])
def test_bad_user_features_are_refused(spec, match):
    with pytest.raises(RnnchatError, match=match):
        all_features("abc", [spec])


def test_probe_reports_units_saturation_and_json(make_checkpoint, tiny_corpus, probe):
    path = make_checkpoint("lstm")
    code, out, err = probe(path, "--corpus", tiny_corpus, "--chars", 400, "--feature", "the=the", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["text"]["chars"] == 400 and not report["text"]["held_out"]
    names = [f["name"] for f in report["features"]]
    assert names[0] == "line_position" and names[-1] == "the"
    top = report["features"][0]["top"]
    assert len(top) == 5 and abs(top[0]["r"]) >= abs(top[-1]["r"])
    assert {(s["layer"], s["gate"]) for s in report["saturation"]["summary"]} == \
        {(lay, g) for lay in (1, 2) for g in "ifo"}
    assert len(report["saturation"]["units"]["2:f"]["left"]) == 8
    code, out, err = probe(path, "--corpus", tiny_corpus, "--chars", 400)
    assert code == 0 and "line_position" in out and "gate saturation" in out and "f gate" in out


def test_reported_correlation_is_pearson_over_the_unit_activation(make_checkpoint, tiny_corpus, probe):
    from rnnchat.engine.checkpoint import load_checkpoint
    from rnnchat.engine.probe import Probe

    path = make_checkpoint("gru")
    code, out, _ = probe(path, "--corpus", tiny_corpus, "--chars", 300, "--json", "--top", 1)
    best = json.loads(out)["features"][0]["top"][0]
    loaded = load_checkpoint(path)
    text = tiny_corpus.read_text(encoding="utf-8")[:300]
    acts, _ = Probe(loaded.model).activations(loaded.vocab.encode(text).ids)
    a = acts[(best["layer"], best["quantity"])][:, best["index"]]
    assert abs(np.corrcoef(a, values(builtin_features(text), "line_position"))[0, 1] - best["r"]) < 1e-3


def test_held_out_part_is_cut_like_training(tiny_corpus):
    from rnnchat.engine.probe_text import select_text

    text = tiny_corpus.read_text(encoding="utf-8")
    sha = hashlib.sha256(tiny_corpus.read_bytes()).hexdigest()
    vocab = Vocab(sorted(set(text)))
    meta = {"corpus": {"name": "tiny", "sha256": sha}, "training": {"val_fraction": 0.2}}
    chosen = select_text(meta, vocab, str(tiny_corpus), 50)
    start = int(len(text) * 0.8)
    assert chosen.held_out and chosen.start == start and chosen.text == text[start:start + 50]
    other = dict(meta, corpus={"name": "tiny", "sha256": "0" * 64})
    chosen = select_text(other, vocab, str(tiny_corpus), 50)
    assert not chosen.held_out and chosen.text == text[:50] and "not the model's training text" in chosen.source
    with pytest.raises(CorpusError, match="--corpus PATH"):
        select_text(meta, vocab, None, 50)  # 'tiny' is not a known corpus here
    with pytest.raises(CorpusError, match="not a corpus name"):  # a checkpoint cannot point the probe at a file
        select_text(dict(meta, corpus={"name": str(tiny_corpus), "sha256": sha}), vocab, None, 50)


def test_html_page_colours_every_character_by_the_unit(make_checkpoint, tiny_corpus, probe, tmp_path):
    page = tmp_path / "page.html"
    code, out, err = probe(make_checkpoint("rnn"), "--corpus", tiny_corpus, "--chars", 120, "--unit", "2:h:3",
                           "--html", page)
    assert code == 0, err
    assert "wrote" in out
    html = page.read_text(encoding="utf-8")
    assert html.split("<pre>")[1].count("<span style=\"background:rgb(") == 120
    assert "unit 2:h:3" in html
    code, out, _ = probe(make_checkpoint("lstm"), "--corpus", tiny_corpus, "--chars", 120, "--html", page, "--json")
    assert json.loads(out)["unit"]["chosen_by"] == "auto:line_position"


def test_html_escapes_the_text_and_refuses_what_is_not_a_regular_file(tmp_path):
    html = render("<b>&\x07\n", np.array([0.5, -1, 2, 0, 0.1, 0.3]), "t", "n<", "state")
    pre = html.split("<pre>")[1].split("</pre>")[0]
    assert re.sub(r"<[^>]*>", "", pre) == "&lt;b&gt;&amp;\\x07\u21b5\n" and "<p>n&lt;</p>" in html
    assert colour(1.0) == "rgb(255,0,0)" and colour(-1.0) == "rgb(0,0,255)" and colour(0.0) == "rgb(255,255,255)"
    with pytest.raises(RnnchatError, match="folder"):
        write_page(tmp_path, html)
    target = tmp_path / "real.html"
    target.write_text("keep", encoding="utf-8")
    link = tmp_path / "link.html"
    os.symlink(target, link)
    with pytest.raises(RnnchatError, match="symbolic link"):
        write_page(link, html)
    assert target.read_text(encoding="utf-8") == "keep"
    write_page(target, html)
    assert target.read_text(encoding="utf-8") == html and not list(tmp_path.glob(".*rnnchat-tmp"))


@pytest.mark.parametrize("args,match", [
    (["--unit", "9:c:0"], "layer 9 has no quantity 'c'"),
    (["--unit", "1:c:99"], "out of range"),
    (["--unit", "nonsense"], "LAYER:QUANTITY:INDEX"),
    (["--unit", "auto:nope"], "no feature 'nope'"),
    (["--feature", "x=("], "invalid regular expression"),
])
def test_user_mistakes_are_one_line_errors(make_checkpoint, tiny_corpus, probe, args, match):
    code, out, err = probe(make_checkpoint("lstm"), "--corpus", tiny_corpus, "--chars", 50, *args)
    assert code == 1 and match in err and len(err.strip().splitlines()) == 1


def test_missing_corpus_is_one_line_through_the_real_entry_point(make_checkpoint):
    r = run_cli("probe", str(make_checkpoint("lstm")))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: the model's corpus is not on this machine") and "--corpus" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_safe_escapes_control_characters():
    assert safe("a\x1b[31mb\nc\u202e") == "a\\x1b[31mb\\nc\\u202e"
