
import json

import pytest
import torch

from genseq.codecs.text import TextCodec
from genseq.data import ItemBatches, pad_sequences
from genseq.errors import GenseqError
from genseq.generate import beam_search, generate
from genseq.models.vae import (LatentDecoder, SequenceVAE, VAEConfig, gaussian_kl, gaussian_log_density, kl_weight,
                               log_mixture_density, reparameterize)
from genseq.store import load_model, model_record, save_atomic
from genseq.tasks import train
from genseq.train import TrainConfig
from genseq.vae import (batches, decode_latents, encode_lines, fit_posteriors, fit_proposal, interpolate, iw_nll,
                        line_codes, lerp, recon_accuracy, slerp, vae_metrics)

from conftest import LINES


def tiny_vae(**kw):
    torch.manual_seed(0)
    return SequenceVAE(VAEConfig(vocab_size=40, embed_dim=16, hidden_size=24, latent_dim=4, **kw))


def batch():
    return pad_sequences([[5, 6, 7], [8, 9], [10, 11, 12, 13]], bos=2, eos=3)


def test_shapes_and_padding():
    model = tiny_vae().eval()
    tokens = batch()
    assert tokens.tolist()[1] == [2, 8, 9, 3, 0, 0]
    mean, logvar = model.encode(tokens)
    assert mean.shape == logvar.shape == (3, 4)
    # padding does not change a line's posterior
    alone, _ = model.encode(pad_sequences([[8, 9]], 2, 3))
    torch.testing.assert_close(mean[1], alone[0], rtol=1e-5, atol=1e-5)
    logits, _ = model.decode(tokens[:, :-1], mean)
    assert logits.shape == (3, 5, 40)


def test_kl_term_matches_torch_distributions():
    mean, logvar = torch.randn(5, 4), torch.randn(5, 4)
    q = torch.distributions.Normal(mean, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros(4), torch.ones(4))
    torch.testing.assert_close(gaussian_kl(mean, logvar), torch.distributions.kl_divergence(q, p))


def test_free_bits_floor_each_dimension():
    model = tiny_vae(free_bits=2.0, kl_schedule="constant", word_dropout=0.0, dropout=0.0)
    out = model.loss(batch(), step=0)
    # at initialisation every dimension's KL is far below 2 nats: the penalty is the floor
    assert out["kl"] < 4 * 2.0
    assert out["loss"].item() == pytest.approx(out["rec"].item() + 4 * 2.0, rel=1e-5)
    # what validation reports as its loss: no floor
    assert out["neg_elbo"].item() == pytest.approx(out["rec"].item() + out["kl"].item(), rel=1e-5)
    # what the overfitting warning compares: the floor at full KL weight, whatever the annealing
    annealed = tiny_vae(free_bits=2.0, kl_schedule="linear", kl_anneal_steps=100, word_dropout=0.0, dropout=0.0)
    out = annealed.loss(batch(), step=10)
    assert out["objective"].item() == pytest.approx(out["rec"].item() + 4 * 2.0, rel=1e-5)
    assert out["objective"].item() > out["loss"].item()
    assert "objective" not in tiny_vae(free_bits=0.0).loss(batch())


@pytest.mark.parametrize("schedule", ["linear", "logistic", "cyclical", "constant"])
def test_annealing_schedules(schedule):
    config = VAEConfig(vocab_size=10, kl_schedule=schedule, kl_anneal_steps=100, kl_cycles=2, beta=0.8)
    weights = [kl_weight(config, s) for s in range(400)]
    assert all(0 <= w <= 0.8 + 1e-9 for w in weights)
    assert weights[-1] == pytest.approx(0.8, abs=1e-3)
    if schedule == "constant":
        assert set(weights) == {0.8}
    else:
        assert weights[0] < 0.1 and weights[25] < weights[75]
    if schedule == "cyclical":
        assert weights[100] == 0 and weights[150] == pytest.approx(0.8) and weights[200] == 0.8
    if schedule == "linear":
        assert weights[50] == pytest.approx(0.4)


def test_autoencoder_pretraining_then_decoder_reset():
    """No KL term during pretraining; the VAE task resets the decoder, and only the decoder, as the
    pretraining ends (the loss itself changes no weights)."""
    from genseq.tasks import VAETask

    model = tiny_vae(ae_pretrain_steps=3)
    assert model.loss(batch(), step=1)["beta"] == 0 and model.loss(batch(), step=10**6)["beta"] > 0
    before = {name: p.clone() for name, p in model.named_parameters()}
    model.loss(batch(), step=3)
    VAETask.before_step(model, 2)
    assert all(torch.equal(before[name], p) for name, p in model.named_parameters())
    VAETask.before_step(model, 3)
    changed = {name for name, p in model.named_parameters() if not torch.equal(before[name], p)}
    assert changed == {name for name in before if name.startswith(("latent_to_state.", "decoder.", "head."))}


def test_latent_decoder_steps_equal_the_teacher_forced_decoder():
    model = tiny_vae().eval()
    tokens = batch()
    z = torch.randn(3, 4)
    full, _ = model.decode(tokens[:, :-1], z)
    full[..., 1] = float("-inf")  # the latent decoder never proposes unk
    decoder = LatentDecoder(model, z)
    logits, state = decoder(tokens[:, :1])
    steps = [logits]
    for t in range(1, tokens.size(1) - 1):
        step_logits, state = decoder.step(tokens[:, t], state)
        steps.append(step_logits.unsqueeze(1))
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-5)


def test_beam_of_one_is_greedy_and_wider_beams_score_no_worse():
    model = tiny_vae().eval()
    decoder = LatentDecoder(model, torch.randn(4, 4))
    greedy = generate(decoder, [2], 8, batch=4, temperature=0)
    assert torch.equal(beam_search(decoder, [2], 8, batch=4, beam=1), greedy)

    @torch.inference_mode()
    def logprob(ids):
        inputs = torch.cat([torch.full((4, 1), 2), ids[:, :-1]], 1)
        logits, _ = decoder(inputs)
        return logits.log_softmax(-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1).sum(1)

    wide = beam_search(decoder, [2], 8, batch=4, beam=6)
    assert (logprob(wide) >= logprob(greedy) - 1e-4).all()


def test_lerp_and_slerp_meet_the_endpoints():
    a, b = torch.randn(8), torch.randn(8)
    for f in (lerp, slerp):
        torch.testing.assert_close(f(a, b, 0.0), a)
        torch.testing.assert_close(f(a, b, 1.0), b)
    mid = slerp(a, b, 0.5)
    assert mid.norm() == pytest.approx(((a.norm() + b.norm()) / 2).item(), rel=0.3)


def test_trained_vae_metrics_and_interpolation_endpoints(tiny_vae_run):
    loaded = load_model(str(tiny_vae_run))
    assert loaded.codec.tokenizer == "char"  # chosen automatically for Chinese
    metrics = vae_metrics(loaded.model, loaded.codec, LINES, iw_samples=20)
    for key in ("iw_nll", "kl", "mutual_info", "active_units", "perplexity", "recon_char_accuracy"):
        assert key in metrics
    assert metrics["kl"] > 1 and metrics["active_units"] >= 1
    assert metrics["recon_char_accuracy"] > 0.8  # memorised a dozen lines
    # IW-NLL is a tighter bound than the ELBO
    assert metrics["iw_nll"] <= metrics["neg_elbo"] + 1e-3
    path = interpolate(loaded, LINES[0], LINES[4], steps=5)
    assert [t for t, _ in path] == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert path[0][1] == LINES[0] and path[-1][1] == LINES[4]


def test_posteriors_fitted_to_each_line_bound_the_likelihood_more_tightly(tiny_vae_run):
    loaded = load_model(str(tiny_vae_run))
    model, codec = loaded.model.eval(), loaded.codec
    ids = next(batches(codec, LINES[:6], 6))
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    mean, logvar = model.encode(ids, proposal=True)
    fitted = fit_posteriors(model, ids, mean, logvar, 40, torch.Generator().manual_seed(0))
    for name, p in model.named_parameters():  # the model is measured, not changed
        assert torch.equal(p, before[name]) and p.grad is None, name
    eps = torch.randn((64, *mean.shape), generator=torch.Generator().manual_seed(1))

    def neg_elbo(q_mean, q_logvar):  # per line, on the same 64 draws
        z = reparameterize(q_mean, q_logvar, eps).flatten(0, 1)
        rec = model.reconstruction_nll(ids.repeat(64, 1), z).view(64, -1).mean(0)
        return rec + gaussian_kl(q_mean, q_logvar).sum(-1)

    with torch.no_grad():
        assert (neg_elbo(*fitted) < neg_elbo(mean, logvar)).all()
        assert neg_elbo(*fitted).mean() < neg_elbo(mean, logvar).mean() - 0.5
    amortised = iw_nll(model, ids, 200, torch.Generator().manual_seed(2))
    tighter = iw_nll(model, ids, 200, torch.Generator().manual_seed(2), fit=40)
    assert torch.isfinite(tighter).all() and tighter.mean() < amortised.mean()
    metrics = vae_metrics(model, codec, LINES[:6], iw_samples=50, iw_fit=40)
    assert metrics["iw_fit_steps"] == 40 and metrics["iw_nll"] <= metrics["neg_elbo"] + 1e-3
    generator = torch.Generator().manual_seed(0)  # as vae_metrics draws: one z for the ELBO, then the IW
    torch.randn(mean.shape, generator=generator)
    same = iw_nll(model, ids, 50, generator, fit=40).mean().item()
    assert metrics["iw_nll"] == pytest.approx(same, rel=1e-4)  # the fit is what vae_metrics scores with


def test_refined_codes_are_likelier_and_each_line_is_refined_alone(tiny_vae_run):
    """Refinement starts at the posterior mean and climbs log p(x|z), line by line."""
    loaded = load_model(str(tiny_vae_run))
    model, codec = loaded.model, loaded.codec
    lines = ["春眠不觉晓", "处处闻啼鸟", "床前明月光"]
    mean, _ = encode_lines(model, codec, lines)
    torch.testing.assert_close(line_codes(model, codec, lines, refine=0), mean)
    refined = line_codes(model, codec, lines, refine=10)
    ids = pad_sequences([codec.encode(line) for line in lines], 2, 3)

    def objective(z):
        with torch.no_grad():
            return model.reconstruction_nll(ids, z)

    assert (objective(refined) < objective(mean)).all()
    alone = line_codes(model, codec, lines[1:2], refine=10)  # batch companions change nothing
    torch.testing.assert_close(alone[0], refined[1], rtol=1e-4, atol=1e-4)
    metrics = vae_metrics(model, codec, lines, refine=10)
    decoded = decode_latents(model, codec, refined, max_tokens=max(len(codec.encode(x)) for x in lines) + 8)
    assert metrics["refine_steps"] == 10
    assert metrics["recon_char_accuracy_refined"] == pytest.approx(recon_accuracy(codec, lines, decoded)["recon_char_accuracy"])


def test_a_decoder_trained_on_unk_alone_is_scored_on_unk():
    """With word dropout 1 the decoder never saw a real input: eval-mode likelihoods feed it unk
    too (they were scored with the real inputs, which the model never learned to read)."""
    model = tiny_vae(word_dropout=1.0).eval()
    tokens, z = batch(), torch.randn(3, 4)
    inputs = tokens[:, :-1].masked_fill((tokens[:, :-1] > 2), 1)  # bos kept, the rest unk (pad stays 0)
    logits, _ = model.decode(inputs, z)
    expected = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tokens[:, 1:], ignore_index=0,
                                                 reduction="none").sum(1)
    torch.testing.assert_close(model.reconstruction_nll(tokens, z), expected)


def test_interpolate_refuses_empty_and_warns_about_unseen(tiny_vae_run):
    loaded = load_model(str(tiny_vae_run))
    with pytest.raises(GenseqError, match="empty line"):
        interpolate(loaded, " ", LINES[0])
    notes = []
    interpolate(loaded, "朕", LINES[0], steps=2, warn=notes.append)
    assert notes and "朕" in notes[0]
    mean, _ = encode_lines(loaded.model, loaded.codec, ["朕"])
    assert torch.isfinite(mean).all()


def test_greedy_images_decide_opacity_before_colour():
    from genseq.codecs.image import opacity_first

    # transparent (id 5) at 0.4 beats each of six similar colours at 0.1, but most mass is colour
    probs = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.1, 0.4, 0.1, 0.1, 0.1, 0.1, 0.1]])
    logits = (probs + 1e-9).log()
    assert logits.argmax(-1).item() == 5
    assert opacity_first(logits, 5).argmax(-1).item() != 5
    probs = torch.tensor([[0.0, 0.0, 0.0, 0.0, 0.2, 0.6, 0.2, 0.0, 0.0, 0.0, 0.0]])
    assert opacity_first((probs + 1e-9).log(), 5).argmax(-1).item() == 5


def test_the_proposal_is_fitted_alone_tightens_the_elbo_and_leaves_the_codes(tmp_path):
    """Free bits hold more KL in the code than the ELBO wants; a proposal fitted to the frozen
    decoder lowers the negative ELBO and the IW-NLL, while the encoder, decoder and embeddings
    stay as trained, so the codes decode as before; the model file keeps the proposal."""
    torch.manual_seed(0)
    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(LINES * 4) + "\n", encoding="utf-8")
    run = tmp_path / "vae"
    config = TrainConfig(steps=80, batch_size=16, lr=1e-2, valid_every=40, seed=0)
    train("vae", corpus, run, model_config=dict(hidden_size=32, embed_dim=16, latent_dim=4, free_bits=3.0,
                                                kl_anneal_steps=20, dropout=0.0),
          valid=corpus, progress=False, train_config=config, refit_steps=0)
    loaded = load_model(str(run))
    model, codec = loaded.model, loaded.codec
    assert "refit" not in loaded.record and model.proposal is None
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    codes_before = line_codes(model, codec, LINES)
    metrics_before = vae_metrics(model, codec, LINES, iw_samples=20)
    with torch.no_grad():
        kl = gaussian_kl(*encode_lines(model, codec, LINES)).mean(0).tolist()
    model.config.free_bits = sorted(kl)[len(kl) // 2]  # a floor with dimensions on both sides of it
    assert min(kl) < model.config.free_bits <= max(kl)
    floored = vae_metrics(model, codec, LINES)
    assert floored["objective"] == pytest.approx(floored["rec"] + sum(max(v, model.config.free_bits) for v in kl),
                                                 rel=1e-4)
    assert metrics_before["objective"] >= metrics_before["neg_elbo"]
    model.config.free_bits = 3.0
    data = ItemBatches([codec.encode(line) for line in LINES], 16, 0, 2, 3)
    stats = fit_proposal(model, data, steps=60, lr=1e-2, progress=False)
    assert stats["steps"] == 60 and stats["kl"] < metrics_before["kl"]
    for name, p in model.named_parameters():
        assert p.requires_grad  # restored
        if name in before:
            assert torch.equal(p, before[name]), name
        else:
            assert name.startswith("proposal."), name
            assert not torch.equal(p, before[name.removeprefix("proposal.")]), name
    assert torch.equal(line_codes(model, codec, LINES), codes_before)
    metrics_after = vae_metrics(model, codec, LINES, iw_samples=20)
    assert metrics_after["neg_elbo"] < metrics_before["neg_elbo"] - 1
    assert metrics_after["iw_nll"] < metrics_before["iw_nll"]
    assert metrics_after["recon_char_accuracy"] == metrics_before["recon_char_accuracy"]
    assert "objective" not in metrics_after  # the proposal's KL is not what the decoder trained with
    save_atomic(model_record(model, codec, "vae"), tmp_path / "fitted.pt")
    again = load_model(str(tmp_path / "fitted.pt")).model
    assert again.config.proposal and torch.equal(again.proposal["posterior"].weight, model.proposal["posterior"].weight)
    assert vae_metrics(again, codec, LINES)["kl"] == pytest.approx(vae_metrics(model, codec, LINES)["kl"])


def test_training_ends_with_the_refit_once(tmp_path):
    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(LINES * 4) + "\n", encoding="utf-8")
    run = tmp_path / "vae"
    options = dict(model_config=dict(hidden_size=24, embed_dim=16, latent_dim=4), valid=corpus, progress=False,
                   train_config=TrainConfig(steps=30, batch_size=8, valid_every=15, seed=0))
    train("vae", corpus, run, **options)
    record = load_model(str(run)).record
    assert record["refit"]["steps"] == 3 and record["refit_steps"] is None  # a tenth of the steps
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [e["split"] for e in logged][-2:] == ["refit", "valid"]
    weights = load_model(str(run)).model.state_dict()
    train("vae", corpus, run, resume=True, **options)  # a finished run: nothing more to do
    again = load_model(str(run)).model.state_dict()
    assert all(torch.equal(weights[k], again[k]) for k in weights)


def test_an_interrupted_refit_keeps_the_trained_model_and_resume_runs_it(tmp_path, monkeypatch):
    import genseq.tasks

    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(LINES * 4) + "\n", encoding="utf-8")
    run = tmp_path / "vae"
    options = dict(model_config=dict(hidden_size=24, embed_dim=16, latent_dim=4), valid=corpus, progress=False,
                   train_config=TrainConfig(steps=20, batch_size=8, valid_every=10, seed=0))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(genseq.tasks, "fit_proposal", interrupted)
    with pytest.raises(GenseqError, match="interrupted while fitting the proposal.*--resume"):
        train("vae", corpus, run, **options)
    assert "refit" not in load_model(str(run)).record  # the trained model, whole
    monkeypatch.undo()
    train("vae", corpus, run, resume=True, **options)
    assert load_model(str(run)).record["refit"]["steps"] == 2


def joins_two_lines(ids: list[int], sequences: list[list[int]], starts: list[bool]) -> bool:
    """Whether ``ids`` is the start of one of ``sequences`` up to a word start, then the end of
    one from a word start."""
    for k in range(1, len(ids)):
        head, tail = ids[:k], ids[k:]
        if (starts[tail[0]] and any(s[:k] == head and len(s) > k and starts[s[k]] for s in sequences)
                and any(len(s) > len(tail) and s[-len(tail):] == tail for s in sequences)):
            return True
    return False


def test_spliced_lines_join_two_training_lines_where_words_start(verse_lines):
    codec = TextCodec.train(verse_lines, "unigram", vocab_size=300)
    starts = codec.word_starts()
    assert starts[codec.encode("love")[0]] and not starts[codec.encode("loved")[-1]]
    sequences = [codec.encode(line) for line in verse_lines[:40]]
    longest = max(len(s) for s in sequences)
    plain = ItemBatches(sequences, 64, 0, 2, 3, splice=0.0, word_starts=starts)
    spliced = ItemBatches(sequences, 64, 0, 2, 3, splice=1.0, word_starts=starts)
    assert torch.equal(spliced.batch(5), spliced.batch(5))  # a function of the step
    rows = [row[1:row.index(3)] for row in spliced.batch(5).tolist()]
    assert all(row in sequences for row in (r[1:r.index(3)] for r in plain.batch(5).tolist()))
    assert all(len(row) <= longest for row in rows)
    assert all(row in sequences or joins_two_lines(row, sequences, starts) for row in rows)
    assert sum(row not in sequences for row in rows) > len(rows) // 2
    half = ItemBatches(sequences, 512, 0, 2, 3, splice=0.5, word_starts=starts)
    new = sum(r[1:r.index(3)] not in sequences for r in half.batch(0).tolist())
    assert 150 < new < 256  # half the rows, less those too long or that join a line to itself
    chinese = TextCodec.train(LINES, "char", vocab_size=100)  # written without spaces: joined anywhere
    poems = [chinese.encode(line) for line in LINES]
    rows = [r[1:r.index(3)] for r in ItemBatches(poems, 64, 0, 2, 3, splice=1.0, word_starts=chinese.word_starts())
            .batch(0).tolist()]
    assert all(len(row) <= 5 for row in rows) and sum(row not in poems for row in rows) > 32


def test_a_spliced_run_keeps_its_setting(tmp_path, verse_lines):
    corpus = tmp_path / "lines.txt"
    corpus.write_text("\n".join(verse_lines[:80]) + "\n", encoding="utf-8")
    run = tmp_path / "vae"
    train("vae", corpus, run, model_config=dict(hidden_size=16, embed_dim=8, latent_dim=4, splice=0.5),
          train_config=TrainConfig(steps=4, batch_size=8, valid_every=4), valid_fraction=0.1, progress=False,
          codec_options=dict(vocab_size=200), refit_steps=0)
    assert load_model(str(run)).model.config.splice == 0.5


def test_log_mixture_density_is_the_mixtures_log_density():
    """Against the mixture written out by hand, for rows split across chunks."""
    torch.manual_seed(0)
    z, means, logvars = torch.randn(5, 3), torch.randn(2, 3), torch.randn(2, 3) * 0.3
    by_hand = torch.log((gaussian_log_density(z, means[0], logvars[0]).exp()
                         + gaussian_log_density(z, means[1], logvars[1]).exp()) / 2)
    assert torch.allclose(log_mixture_density(z, means, logvars, chunk=2), by_hand, atol=1e-5)
    assert torch.allclose(log_mixture_density(z, means[:1], logvars[:1]), gaussian_log_density(z, means[0], logvars[0]))
