"""Where a sentence VAE's likelihood gap to a language model lies: in the estimate, or in the model.

A VAE whose codes give back most of a line scores an IW-NLL some nats above an LM of its
decoder's size (``verse``: 64.5 against 53.6 on the first 500 test lines). Two things could make
that gap: the estimate (too few importance samples, or a q too far from each line's posterior,
and the bound is loose) or the model (its marginal p(x) is worse). This bench measures both, on
the first ``--lines`` test lines:

- the estimate: IW-NLL with each number of ``--samples`` (q fitted to each line for 30 steps, as
  ``genseq eval`` does) and with each number of ``--fit`` steps (100 samples). If it levels off,
  the gap is the model's;
- the prior: the test lines' KL under the proposal, against N(0, I) and against Gaussians fitted
  to the aggregate posterior of ``--train`` lines (the moments of the mixture of their q(z|x):
  diagonal, and full covariance), and against that mixture itself (the empirical aggregate
  posterior, over as many training lines as each of ``--aggregate``). The KL is the only term of
  the ELBO a prior changes, so how far it falls is what replacing N(0, I) with that prior could
  give the ELBO, with the encoder and decoder as they are.

Run: python bench/vae_likelihood_gap.py -m verse --test corpora/shakespeare/lines/test.txt \
        --train corpora/shakespeare/lines/train.txt
"""

import json
import math
import random

import torch

import genseq
from genseq.codecs.text import read_text_corpus
from genseq.models.vae import log_mixture_density, reparameterize
from genseq.vae import IW_FIT_STEPS, batches, encode_lines, iw_nll

from common import make_parser, timed


def proposal_posteriors(model, codec, lines: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """The proposal's q(z|x) of each line: means and log-variances (N, Z), float64."""
    return tuple(part.double() for part in encode_lines(model, codec, lines, proposal=True))


def iw_estimate(model, codec, lines: list[str], samples: int, fit: int, seed: int) -> float:
    """IW-NLL in nats per line, ``samples`` draws from a q fitted to each line for ``fit`` steps."""
    generator = torch.Generator().manual_seed(seed)
    return sum(iw_nll(model, ids, samples, generator, fit=fit).sum().item()
               for ids in batches(codec, lines, 50)) / len(lines)


def gaussian_cross_entropy(mean, logvar, prior_mean, prior_cov) -> torch.Tensor:
    """E over q = N(mean, diag exp(logvar)) of -log N(z; prior_mean, prior_cov), per line (N,)."""
    inverse = torch.linalg.inv(prior_cov)
    _, logdet = torch.linalg.slogdet(prior_cov)
    offset = mean - prior_mean
    quadratic = ((offset @ inverse) * offset).sum(1) + (logvar.exp() * inverse.diagonal()).sum(1)
    return 0.5 * (mean.size(1) * math.log(2 * math.pi) + logdet + quadratic)


def mixture_cross_entropy(mean, logvar, components: tuple, generator, draws: int = 4) -> torch.Tensor:
    """E over q of -log of the equal mixture of Gaussians ``components`` (means, logvars), per line
    (N,), from ``draws`` draws of z each."""
    total = torch.zeros(len(mean), dtype=torch.float64)
    for _ in range(draws):
        z = reparameterize(mean, logvar, torch.randn(mean.shape, generator=generator, dtype=torch.float64))
        total -= log_mixture_density(z, *components)
    return total / draws


def prior_kls(model, codec, test: list[str], train: list[str], aggregate: list[int], seed: int) -> dict:
    """The test lines' KL (nats per line) under the proposal against each prior (the module's doc)."""
    mean, logvar = proposal_posteriors(model, codec, test)
    train_mean, train_logvar = proposal_posteriors(model, codec, train)
    dims = mean.size(1)
    entropy = 0.5 * (dims * (1 + math.log(2 * math.pi)) + logvar.sum(1))  # of each q, (N,)
    centre = train_mean.mean(0)
    covariance = torch.cov(train_mean.T) + torch.diag(train_logvar.exp().mean(0))  # the mixture's
    priors = {
        "standard_normal": (torch.zeros(dims, dtype=torch.float64), torch.eye(dims, dtype=torch.float64)),
        "diagonal_gaussian": (centre, torch.diag(covariance.diagonal())),
        "full_gaussian": (centre, covariance),
    }
    kls = {name: (gaussian_cross_entropy(mean, logvar, *prior) - entropy).mean().item()
           for name, prior in priors.items()}
    generator = torch.Generator().manual_seed(seed)
    for n in aggregate:
        components = (train_mean[:n], train_logvar[:n])
        kls[f"aggregate_{n}_lines"] = (mixture_cross_entropy(mean, logvar, components, generator) - entropy).mean().item()
    return kls


def main():
    parser = make_parser(__doc__)
    parser.add_argument("-m", "--model", required=True)
    parser.add_argument("--test", required=True)
    parser.add_argument("--train", required=True)
    parser.add_argument("--lines", type=int, default=50, help="test lines for the IW-NLL (the first ones)")
    parser.add_argument("--kl-lines", type=int, default=500, help="test lines for the priors' KL")
    parser.add_argument("--samples", default="100,1000,5000")
    parser.add_argument("--fit", default="0,30,100,300")
    parser.add_argument("--aggregate", default="500,2000,8000",
                        help="training lines in the empirical aggregate posterior")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    loaded = genseq.load(args.model, "cpu")
    loaded.require("vae_likelihood_gap", "vae", ("text",))
    model, codec = loaded.model, loaded.codec
    test = read_text_corpus(args.test)
    train = list(read_text_corpus(args.train))
    random.Random(args.seed).shuffle(train)  # the aggregate of lines from the whole file
    aggregate = [int(n) for n in args.aggregate.split(",")]
    result = {"model": args.model, "test": args.test, "iw_lines": args.lines, "iw_samples": {}, "iw_fit": {}}
    estimates = {}  # (samples, fit steps) -> the figures, each pair measured once

    def estimate(samples: int, fit: int) -> dict:
        if (samples, fit) not in estimates:
            seconds, nll = timed(iw_estimate, model, codec, test[:args.lines], samples, fit, args.seed)
            estimates[samples, fit] = {"iw_nll": round(nll, 3), "seconds": round(seconds, 1)}
        return estimates[samples, fit]

    for samples in (int(k) for k in args.samples.split(",")):
        result["iw_samples"][samples] = estimate(samples, IW_FIT_STEPS)
    for fit in (int(k) for k in args.fit.split(",")):
        result["iw_fit"][fit] = estimate(100, fit)
    kls = prior_kls(model, codec, test[:args.kl_lines], train[:max(aggregate)], aggregate, args.seed)
    result.update(kl_lines=args.kl_lines, prior_kl={name: round(kl, 3) for name, kl in kls.items()})
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
