import pytest
import torch

from genseq.models import RNNConfig, RNNLM, build_model, model_config
from genseq.models.rnn import stream_nll


def tiny(cell="gru", tie=False, layers=2):
    torch.manual_seed(0)
    return RNNLM(RNNConfig(vocab_size=50, cell=cell, embed_dim=16, hidden_size=24, num_layers=layers,
                           dropout=0.0, tie_embeddings=tie)).eval()


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_causal_later_tokens_never_change_earlier_logits(cell):
    model = tiny(cell)
    tokens = torch.randint(50, (2, 20))
    changed = tokens.clone()
    changed[:, 12:] = torch.randint(50, (2, 8))
    a, _ = model(tokens)
    b, _ = model(changed)
    assert torch.equal(a[:, :12], b[:, :12])
    assert not torch.allclose(a[:, 12:], b[:, 12:])


@pytest.mark.parametrize("cell, tie", [("gru", False), ("lstm", False), ("gru", True)])
def test_step_by_step_equals_teacher_forced(cell, tie):
    model = tiny(cell, tie)
    tokens = torch.randint(50, (3, 15))
    full, _ = model(tokens)
    logits, state = model(tokens[:, :5])  # prime in one call, then step
    stepped = [logits]
    for t in range(5, 15):
        step_logits, state = model.step(tokens[:, t], state)
        stepped.append(step_logits.unsqueeze(1))
    torch.testing.assert_close(torch.cat(stepped, 1), full, rtol=1e-5, atol=1e-5)


def test_config_rebuilds_the_model():
    model = tiny("lstm", tie=True)
    again = build_model(model.family, model_config(model))
    again.load_state_dict(model.state_dict())
    tokens = torch.randint(50, (1, 7))
    assert torch.equal(model(tokens)[0], again.eval()(tokens)[0])
    assert again.head.weight is again.embed.weight


def test_stream_nll_matches_one_long_forward():
    model = tiny()
    stream = torch.randint(50, (301,))
    nats, count = stream_nll(model, stream, lanes=1, chunk=64)
    logits, _ = model(stream[None, :-1])
    expected = torch.nn.functional.cross_entropy(logits[0], stream[1:], reduction="sum").item()
    assert count == 300
    assert nats == pytest.approx(expected, rel=1e-5)
    # more lanes lose a little context at each lane's start but count every token once
    assert stream_nll(model, stream, lanes=7, chunk=16)[1] == 300
