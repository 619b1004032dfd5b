"""A PixelVAE-style head on the image VAE, measured and not shipped (docs/results.md).

The prototype the image VAE was compared with (Gulrajani et al. 2017): the shipped decoder's
shape (a 10-dimensional code, transposed convolutions, 32 channels, dropout 0.2) whose features
condition two masked convolutions (5 x 5 over the pixels above and to the left, then 3 x 3) that
predict each pixel, trained on the creatures' training sprites (mirrored at random, batch 32, lr
2e-3, a moving average of the weights, KL ramped over 2,000 steps, free bits per dimension) for
MINUTES on one thread. ``AR 0`` trains the same model without the head. It prints the validation
and test negative ELBO (nats per sprite; /1024 for nats per pixel) and KL, the share of test
pixels greedy decoding gives back from the posterior means, and writes reconstructions and prior
samples (greedy and at temperature 0.7) to /tmp/pvae_*.png.
Run: OMP_NUM_THREADS=1 python bench/pixelvae_head.py 12 1 3     # MINUTES AR FREE_BITS
"""

import glob
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from genseq.codecs.image import ImageCodec, opacity_first
from genseq.media import grid, write_png

from common import ROOT

torch.manual_seed(0)


def load(split):
    return [np.asarray(Image.open(f).convert("RGBA"))
            for f in sorted(glob.glob(str(ROOT / "corpora/sprites/creatures" / split / "*.png")))]


tr, va, te = [load(s) for s in ("train", "valid", "test")]
codec = ImageCodec.fit(tr, 167, 32, 32)
C = codec.start_id
enc = lambda xs: torch.tensor(np.stack([codec.encode_array(x) for x in xs])).view(-1, 32, 32)  # noqa: E731
Xtr, Xva, Xte = enc(tr), enc(va), enc(te)
Z, W, MIN, AR, FB = 10, 32, float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])


class Masked(nn.Conv2d):
    def __init__(s, a, b, k, centre):
        super().__init__(a, b, k, padding=k // 2)
        m = torch.ones_like(s.weight); m[:, :, k // 2, k // 2 + (1 if centre else 0):] = 0; m[:, :, k // 2 + 1:] = 0
        s.register_buffer('mask', m)
    def forward(s, x): return F.conv2d(x, s.weight * s.mask, s.bias, padding=s.padding)
class VAE(nn.Module):
    def __init__(s):
        super().__init__()
        s.embed = nn.Embedding(C, 16)
        s.enc = nn.Sequential(nn.Conv2d(16, W, 4, 2, 1), nn.GELU(), nn.Conv2d(W, 2*W, 4, 2, 1), nn.GELU(),
                              nn.Conv2d(2*W, 4*W, 4, 2, 1), nn.GELU())
        s.post = nn.Linear(4*W*16, 2*Z)
        s.lin = nn.Linear(Z, 4*W*16)
        s.dec = nn.Sequential(nn.GELU(), nn.Dropout2d(0.2), nn.ConvTranspose2d(4*W, 2*W, 4, 2, 1), nn.GELU(), nn.Dropout2d(0.2),
                              nn.ConvTranspose2d(2*W, W, 4, 2, 1), nn.GELU(), nn.Dropout2d(0.2), nn.ConvTranspose2d(W, W, 4, 2, 1), nn.GELU())
        if AR:
            s.xemb = nn.Embedding(C, 16)
            s.a = Masked(16, W, 5, False); s.b = Masked(W, W, 3, True)
            s.ca = nn.Conv2d(W, W, 1); s.cb = nn.Conv2d(W, W, 1)
        s.head = nn.Conv2d(W, C, 1)
    def encode(s, x):
        return s.post(s.enc(s.embed(x).permute(0, 3, 1, 2)).flatten(1)).chunk(2, -1)
    def feats(s, z): return s.dec(s.lin(z).view(-1, 4*W, 4, 4))
    def logits(s, f, x):
        if not AR: return s.head(f)
        h = F.gelu(s.a(s.xemb(x).permute(0, 3, 1, 2)) + s.ca(f))
        h = F.gelu(s.b(h) + s.cb(f)) 
        return s.head(h)
    @torch.no_grad()
    def greedy(s, z, temp=0.0, gen=None):
        f = s.feats(z); x = torch.full((len(z), 32, 32), codec.transparent_id)
        if not AR:
            lg = s.head(f).permute(0, 2, 3, 1); return opacity_first(lg, codec.transparent_id).argmax(-1)
        for i in range(1024):
            r, c = divmod(i, 32)
            lg = s.logits(f, x)[:, :, r, c]
            if temp == 0: x[:, r, c] = opacity_first(lg, codec.transparent_id).argmax(-1)
            else: x[:, r, c] = torch.multinomial((lg / temp).softmax(-1), 1, generator=gen).squeeze(1)
        return x
m = VAE(); opt = torch.optim.AdamW(m.parameters(), 2e-3)
ema = {k: v.detach().clone() for k, v in m.state_dict().items()}
def nll(X):
    m.eval()
    with torch.no_grad():
        mu, lv = m.encode(X); z = mu + torch.randn_like(mu) * (0.5 * lv).exp()
        rec = F.cross_entropy(m.logits(m.feats(z), X), X, reduction='none').sum((1, 2)).mean().item()
        kl = (0.5 * (mu ** 2 + lv.exp() - 1 - lv)).sum(1).mean().item()
    m.train(); return rec + kl, kl
t0 = time.time(); step = 0
while time.time() - t0 < MIN * 60:
    x = Xtr[torch.randint(len(Xtr), (32,))]
    flip = torch.rand(32) < 0.5
    x = torch.where(flip[:, None, None], x.flip(-1), x)
    mu, lv = m.encode(x); z = mu + torch.randn_like(mu) * (0.5 * lv).exp()
    rec = F.cross_entropy(m.logits(m.feats(z), x), x, reduction='none').sum((1, 2)).mean()
    kld = (0.5 * (mu ** 2 + lv.exp() - 1 - lv)).mean(0); kl = kld.sum()
    loss = rec + min(1.0, step / 2000) * kld.clamp(min=FB).sum()
    opt.zero_grad(); loss.backward(); opt.step(); step += 1
    with torch.no_grad():
        for k, v in m.state_dict().items():
            if v.dtype.is_floating_point: ema[k].mul_(0.999).add_(v, alpha=0.001)
    if step % 1000 == 0: print(step, f"{time.time()-t0:.0f}s train rec {rec.item():.0f} kl {kl.item():.1f} valid", nll(Xva), flush=True)
m.load_state_dict(ema); m.eval()
print('final valid', nll(Xva), 'test', nll(Xte))
with torch.no_grad():
    mu, _ = m.encode(Xte[:8]); r = m.greedy(mu)
    print('test acc greedy', (r == Xte[:8]).float().mean().item())
    write_png(f'/tmp/pvae_{AR}_{FB}_recon.png', grid([*te[:8], *[codec.decode(i.flatten().numpy()) for i in r]], columns=8))
    gen = torch.Generator().manual_seed(0); zz = torch.randn(16, Z, generator=gen)
    write_png(f'/tmp/pvae_{AR}_{FB}_prior.png', grid([codec.decode(i.flatten().numpy()) for i in m.greedy(zz)], columns=8))
    write_png(f'/tmp/pvae_{AR}_{FB}_prior_t.png', grid([codec.decode(i.flatten().numpy()) for i in m.greedy(zz, 0.7, gen)], columns=8))
