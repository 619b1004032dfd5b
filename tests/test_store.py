import pytest
import torch

import genseq

from genseq.errors import GenseqError
from genseq.store import VERSION, export_model, load_model, read_file, resolve


class Exploit:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))  # loading this would create the marker file


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"format": "genseq", "version": VERSION, "payload": Exploit(str(marker))},
               tmp_path / "evil.pt")
    with pytest.raises(GenseqError, match="asks to load .*open.* genseq refuses"):
        read_file(tmp_path / "evil.pt")
    assert not marker.exists()


def test_files_that_are_not_models(tmp_path):
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(GenseqError, match="not a genseq model"):
        read_file(tmp_path / "text.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "other.pt")
    with pytest.raises(GenseqError, match="not a genseq model"):
        read_file(tmp_path / "other.pt")


def test_other_format_versions_get_a_clear_message(tmp_path, tiny_run):
    record = read_file(tiny_run / "model.pt")
    record["version"] = VERSION + 1
    torch.save(record, tmp_path / "future.pt")
    with pytest.raises(GenseqError, match=f"format version {VERSION + 1}"):
        read_file(tmp_path / "future.pt")


def test_model_argument_forms(tiny_run, tmp_path):
    assert resolve(str(tiny_run)) == tiny_run / "model.pt"
    assert resolve(str(tiny_run / "model.pt")) == tiny_run / "model.pt"
    with pytest.raises(GenseqError, match="no model file, run folder or shipped model named 'nope'"):
        resolve("nope")
    with pytest.raises(GenseqError, match="holds no model.pt"):
        resolve(str(tmp_path))
    loaded = load_model(str(tiny_run))
    assert not loaded.model.training and loaded.codec.kind == "text"
    with pytest.raises(GenseqError, match="is a language model; this command needs a VAE"):
        genseq.load(str(tiny_run)).reconstruct(["a line"])


def test_a_config_that_claims_other_sizes_than_its_weights_is_refused_before_building(tiny_run, tmp_path):
    record = read_file(tiny_run / "model.pt")
    record["config"]["hidden_size"] = 400_000  # 1.9 TB of weights if it were built
    torch.save(record, tmp_path / "liar.pt")
    with pytest.raises(GenseqError, match="the weights do not match the stored config .*damaged"):
        load_model(str(tmp_path / "liar.pt"))
    del record["model"]["head.bias"]
    record["config"]["hidden_size"] = read_file(tiny_run / "model.pt")["config"]["hidden_size"]
    torch.save(record, tmp_path / "missing.pt")
    with pytest.raises(GenseqError, match=r"\(head.bias differs\)"):
        load_model(str(tmp_path / "missing.pt"))


@pytest.mark.parametrize("precision, shrink, tolerance", [("float16", 0.45, 1e-2), ("int8", 0.65, 0.05)])
def test_export_shrinks_the_file_and_loads_back(tiny_run, tmp_path, precision, shrink, tolerance):
    size = export_model(str(tiny_run), tmp_path / "small.pt", precision)
    full, small = load_model(str(tiny_run)), load_model(str(tmp_path / "small.pt"))
    weight_bytes = sum(p.numel() * 4 for p in full.model.parameters())
    assert (tiny_run / "model.pt").stat().st_size - size > shrink * weight_bytes
    assert "optimizer" not in read_file(tmp_path / "small.pt")
    for (name, a), b in zip(full.model.state_dict().items(), small.model.state_dict().values()):
        assert b.dtype == a.dtype and torch.allclose(a, b, atol=tolerance * a.abs().max().item()), name
    tokens = torch.randint(full.codec.vocab_size, (1, 20))
    torch.testing.assert_close(small.model(tokens)[0].softmax(-1), full.model(tokens)[0].softmax(-1),
                               atol=0.02, rtol=0)
