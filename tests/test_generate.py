import torch

from genseq.generate import filter_logits, generate
from genseq.models import RNNConfig, RNNLM


def model():
    torch.manual_seed(0)
    return RNNLM(RNNConfig(vocab_size=30, embed_dim=8, hidden_size=16, num_layers=1, dropout=0.0))


def test_same_seed_same_samples_other_seed_other_samples():
    m = model()
    a = generate(m, [1, 2, 3], 40, batch=4, seed=7)
    b = generate(m, [1, 2, 3], 40, batch=4, seed=7)
    c = generate(m, [1, 2, 3], 40, batch=4, seed=8)
    assert a.shape == (4, 40)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # the batch holds different sequences


def test_temperature_zero_is_greedy_and_matches_the_naive_loop():
    m = model().eval()
    out = generate(m, [4, 5], 12, temperature=0)
    sequence = [4, 5]
    for _ in range(12):  # re-run the whole prefix each step
        logits, _ = m(torch.tensor([sequence]))
        sequence.append(int(logits[0, -1].argmax()))
    assert out[0].tolist() == sequence[2:]


def test_top_k_and_top_p_keep_the_right_tokens():
    logits = torch.log(torch.tensor([[0.5, 0.25, 0.15, 0.1]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.7)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.75)).tolist() == [[True, True, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.76)).tolist() == [[True, True, True, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.1)).tolist() == [[True, False, False, False]]


def test_samples_obey_top_k():
    m = model().eval()
    logits, _ = m(torch.tensor([[1, 2]]))
    allowed = set(torch.topk(logits[0, -1], 3).indices.tolist())
    first = generate(m, [1, 2], 1, batch=200, top_k=3, seed=0)[:, 0]
    assert set(first.tolist()) <= allowed


def test_stop_id_ends_each_sequence():
    m = model()
    out = generate(m, [1], 300, batch=6, seed=3, stop_id=0, temperature=2.0)
    stopped = [row for row in out.tolist() if 0 in row]
    assert len(stopped) >= 3  # at temperature 2 most rows draw the stop id within 300 tokens
    for row in stopped:
        assert set(row[row.index(0):]) == {0}


def test_beam_search_keeps_the_most_likely_sequence():
    """A beam of one is greedy decoding; a wider beam finds a sequence at least as likely."""
    from genseq.generate import beam_search

    m = model().eval()
    assert torch.equal(beam_search(m, [4, 5], 10, beam=1), generate(m, [4, 5], 10, temperature=0))

    def log_prob(tokens):
        logits, _ = m(torch.tensor([[4, 5, *tokens[:-1]]]))
        return logits[0, 1:].log_softmax(-1).gather(1, torch.tensor(tokens)[:, None]).sum().item()
    wide, greedy = beam_search(m, [4, 5], 10, beam=5)[0].tolist(), generate(m, [4, 5], 10, temperature=0)[0].tolist()
    assert log_prob(wide) >= log_prob(greedy) - 1e-5
