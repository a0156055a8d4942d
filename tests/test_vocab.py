"""Vocabularies: any script, NFC, unknown characters, capped vocabularies."""

from rnnchat.core.vocab import UNK, Vocab


def test_chinese_text_round_trips():
    text = "《靜夜思》李白\n床前明月光，疑是地上霜。\n"
    v = Vocab.from_text(text)
    enc = v.encode(text)
    assert v.decode(enc.ids) == text and enc.dropped == ""


def test_nfc_normalisation():
    v = Vocab.from_text("caf\u00e9")
    enc = v.encode("cafe\u0301")  # decomposed é
    assert enc.dropped == "" and v.decode(enc.ids) == "caf\u00e9"


def test_unknown_characters_dropped_once_each():
    v = Vocab.from_text("abc")
    enc = v.encode("axxbyc")
    assert v.decode(enc.ids) == "abc" and enc.dropped == "xy"


def test_capped_vocabulary_maps_rare_characters_to_unk():
    v = Vocab.from_text("aaaabbbcc" + "xyz", max_size=3)
    assert len(v) == 3 and UNK in v
    enc = v.encode("abcz")
    assert enc.dropped == "" and enc.mapped == "cz"
    assert v.decode(enc.ids) == "ab" + UNK + UNK
