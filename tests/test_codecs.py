import pytest

from genseq.codecs import TextCodec, codec_from_state, read_text_corpus
from genseq.codecs.base import EOS, UNK
from genseq.errors import GenseqError


@pytest.mark.parametrize("tokenizer", ["unigram", "bpe", "char"])
def test_text_round_trip(verse_lines, tokenizer):
    codec = TextCodec.train(verse_lines, tokenizer, vocab_size=300)
    for line in verse_lines[:50]:
        ids = codec.encode(line)
        assert all(0 <= i < codec.vocab_size for i in ids)
        assert codec.decode(ids) == line


def test_unknown_characters_map_to_unk(verse_lines):
    codec = TextCodec.train(verse_lines, "unigram", vocab_size=300)
    ids = codec.encode("Thou art 春眠")
    assert UNK in ids
    assert codec.decode(ids).startswith("Thou art")


def test_state_rebuilds_the_same_codec(verse_lines):
    codec = TextCodec.train(verse_lines, "unigram", vocab_size=300)
    again = codec_from_state(codec.state_dict())
    assert again.vocab_size == codec.vocab_size
    assert again.encode(verse_lines[0]) == codec.encode(verse_lines[0])
    assert isinstance(codec.state_dict()["spm_model"], bytes)


def test_stream_separates_lines_with_eos(verse_lines):
    codec = TextCodec.train(verse_lines, "unigram", vocab_size=300)
    stream = codec.encode_stream(verse_lines[:3]).tolist()
    assert stream[0] == EOS and stream[-1] == EOS and stream.count(EOS) == 4
    pieces, current = [], []
    for token in stream[1:]:
        if token == EOS:
            pieces.append(codec.decode(current))
            current = []
        else:
            current.append(token)
    assert pieces == verse_lines[:3]
    assert codec.prime("To be") == [EOS] + codec.encode("To be")
    assert codec.counts(["ab", "cde"]) == {"char": 7}


def test_read_folder_of_txt(tmp_path):
    (tmp_path / "b.txt").write_text("second file\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("first\n\n  \nfile\n", encoding="utf-8")
    (tmp_path / "notes.md").write_text("ignored\n", encoding="utf-8")
    assert read_text_corpus(tmp_path) == ["first", "file", "second file"]


@pytest.mark.parametrize("content, message", [
    (b"", "holds no text"),
    (b"\n  \n", "holds no text"),
    (b"caf\xe9 latin-1\n", "not UTF-8 text \\(byte 3 is 0xe9\\)"),
    (("line one\n" * 5000 + "caf\xe9\n").encode("latin-1"), "not UTF-8 text \\(byte 45003 is 0xe9\\)"),
    (b"\x00\x01\x02binary", "looks binary"),
])
def test_bad_text_files_are_named(tmp_path, content, message):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(GenseqError, match=message):
        read_text_corpus(path)


def test_lines_split_as_before_on_every_line_boundary(tmp_path):
    """Reading a line at a time splits where str.splitlines does (\\r\\n, \\r, form feed, U+2028 ...)."""
    text = "one\r\ntwo\rthree\x0cfour\u2028five\n  \nsix"
    (tmp_path / "c.txt").write_bytes(text.encode("utf-8"))
    assert read_text_corpus(tmp_path / "c.txt") == [x.strip() for x in text.splitlines() if x.strip()]


def test_the_stream_is_encoded_in_chunks_as_one_call_would(verse_lines):
    import torch

    codec = TextCodec.train(verse_lines, "unigram", vocab_size=300)
    whole = [EOS]
    for ids in codec.sp.encode(verse_lines[:100]):
        whole += ids + [EOS]
    stream = codec.encode_stream(verse_lines[:100], chunk=7)
    assert stream.dtype == torch.uint16 and stream.long().tolist() == whole


def test_a_large_corpus_fits_its_tokenizer_on_a_seeded_sample(verse_lines, monkeypatch):
    from genseq.codecs import text

    monkeypatch.setattr(text, "TOKENIZER_LINES", 200)
    a, b = TextCodec.train(verse_lines, "unigram", vocab_size=300), TextCodec.train(verse_lines, "unigram", vocab_size=300)
    assert a.model_proto == b.model_proto  # the same sample each time
    monkeypatch.setattr(text, "TOKENIZER_LINES", len(verse_lines))
    assert TextCodec.train(verse_lines, "unigram", vocab_size=300).model_proto != a.model_proto


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(GenseqError, match="does not exist"):
        read_text_corpus(tmp_path / "nope.txt")
    with pytest.raises(GenseqError, match="no .txt files"):
        read_text_corpus(tmp_path)


def test_lines_are_compact_views_that_read_as_a_list(tmp_path):
    from genseq.data import split_holdout

    text = [f"line {i} é" for i in range(237)]
    (tmp_path / "c.txt").write_text("\n".join(text) + "\n", encoding="utf-8")
    lines = read_text_corpus(tmp_path / "c.txt")
    assert lines == text and list(lines) == text and len(lines) == 237
    assert lines[3] == text[3] and lines[-1] == text[-1]
    assert lines[10:20] == text[10:20] and lines[10:20][2:4] == text[12:14]
    assert lines.take([5, 1])[1] == text[1] and lines[100:].take([0])[0] == text[100]
    for seed in range(3):  # the same split as a list of strings gets, as views of the one buffer
        train, valid = split_holdout(lines, 0.1, seed)
        assert (train, valid) == split_holdout(text, 0.1, seed)
        assert train.data is lines.data and valid.data is lines.data
