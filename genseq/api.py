"""genseq as a library: load a model, call what it does.

    import genseq
    poems = genseq.load("poems")                     # a shipped name, a model file or a run folder
    poems.interpolate("床前明月光", "春眠不觉晓", steps=8)  # -> list of lines
    wave, rate = genseq.load("speech").continue_("clip.wav", seconds=4)
    genseq.train("lm", "my.txt", out="runs/mine", minutes=3)

A :class:`Model` owns a trained model and its codec and offers the jobs as methods, as
audiocraft's generation models do; each ``genseq`` command parses its options, calls one of them
and writes the result. A job that does not apply to a model (continuing audio with a poem VAE)
raises :class:`~genseq.errors.GenseqError` with the line the command line prints.
"""

from pathlib import Path

import numpy as np
import torch

from genseq import distributed, tasks, vae
from genseq.codecs import corpus_kind, read_corpus, read_image
from genseq.codecs.audio import wav_shortfall
from genseq.device import pick_device
from genseq.errors import GenseqError
from genseq.store import Loaded, load_model, model_record, save_atomic
from genseq.train import TrainConfig

# how a model samples when neither the call nor its file says otherwise: the whole distribution
SAMPLING = {"temperature": 1.0, "top_k": 0, "top_p": 1.0}


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def to_pil(pixels: np.ndarray):
    """An RGBA array (H, W, 4) as a PIL image."""
    from PIL import Image as PILImage

    return PILImage.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))


def as_rgba(image) -> np.ndarray:
    """A path, a PIL image or an (H, W, 3 or 4) array -> an RGBA uint8 array."""
    if isinstance(image, (str, Path)):
        return read_image(image)
    pixels = np.asarray(image.convert("RGBA") if hasattr(image, "convert") else image)
    if pixels.ndim != 3 or pixels.shape[-1] not in (3, 4):
        raise GenseqError(f"an image must be H x W x 3 or 4 (RGB or RGBA); got shape {pixels.shape}")
    if pixels.shape[-1] == 3:
        pixels = np.concatenate([pixels, np.full(pixels.shape[:2] + (1,), 255, pixels.dtype)], -1)
    return pixels.astype(np.uint8)


class Model(Loaded):
    """A trained model with its codec. Build one with :func:`load`.

    Attributes (from :class:`~genseq.store.Loaded`): ``model`` (the ``nn.Module``, in eval mode),
    ``codec``, ``record`` (the model file's dict: task, config, corpus facts, held-out scores) and
    ``path``.
    """

    @property
    def kind(self) -> str:
        """``text``, ``audio`` or ``image``."""
        return self.codec.kind

    @property
    def task(self) -> str:
        """``lm`` (an autoregressive model) or ``vae``."""
        return self.record["task"]

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        return f"genseq.Model({str(self.path)!r}, task={self.task!r}, kind={self.kind!r})"

    def sampling(self, temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
                 seed: int | None = None) -> dict:
        """The sampling settings a job uses: each one given, else the model's own (the model file's
        ``sampling``, which ``genseq export --temperature/--top-k/--top-p`` stores: the piano's
        temperature is 0.9), else :data:`SAMPLING`'s (the whole distribution)."""
        given = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
        own = self.record.get("sampling") or {}
        chosen = {k: v if v is not None else type(SAMPLING[k])(own.get(k, SAMPLING[k])) for k, v in given.items()}
        return {**chosen, "seed": seed}

    def require(self, job: str, task: str | None = None, kinds: tuple[str, ...] = ("text", "audio", "image")) -> None:
        """Refuse ``job`` (a command's name) unless this is a ``task`` model of one of ``kinds``."""
        if (task is None or self.task == task) and self.kind in kinds:
            return
        if task == "vae" and self.task != "vae":
            raise GenseqError(f"{self.path} is a language model; this command needs a VAE: train one "
                              "with genseq train vae")
        if task == "vae":
            hint = "genseq traverse, interpolate and sample take an image VAE" if self.kind == "image" else \
                "genseq interpolate and reconstruct take a sentence VAE"
            raise GenseqError(f"{self.path} is a VAE of {self.kind}s; {hint}")
        what = "a VAE" if self.task == "vae" else f"{article(self.kind)} {self.kind} model"
        raise GenseqError(f"{self.path} is {what}; genseq {job} needs an autoregressive {' or '.join(kinds)} "
                          "model (genseq models lists them)")

    # -- every kind ----------------------------------------------------------------------------
    def sample(self, n: int | None = None, *, seconds: float = 4.0, prompt: str | None = None,
               max_tokens: int = 200, decode: str = "greedy", beam: int = 5, temperature: float | None = None,
               top_k: int | None = None, top_p: float | None = None, seed: int | None = None, progress: bool = False):
        """Draw from the model.

        Returns:
            text: ``n`` lines (default 5), each continuing ``prompt`` (a language model) or decoded
            from the prior (a VAE, by ``decode``: greedy, sample or beam);
            audio: ``(waves, rate)``, waves float32 of shape (n, seconds * rate), n default 1;
            images: ``n`` PIL images (default 16), drawn pixel by pixel or decoded from the prior.
        """
        sampling = self.sampling(temperature, top_k, top_p, seed)
        if self.kind == "audio":
            return self._audio(None, seconds, n or 1, progress, sampling)
        if self.task == "vae":
            if prompt:
                raise GenseqError("a VAE samples whole lines from its prior and takes no --prompt; "
                                  "use genseq reconstruct or interpolate to start from a line")
            items = vae.sample_prior(self, n or (16 if self.kind == "image" else 5), decode=decode, beam=beam,
                                     **sampling)
        elif self.kind == "image":
            items = tasks.sample_images(self, n or 16, progress=progress, **sampling)
        else:
            return tasks.sample_text(self, n or 5, prompt, max_tokens, **sampling)
        return [to_pil(item) for item in items] if self.kind == "image" else items

    def evaluate(self, corpus, *, iw_samples: int = 500, seed: int = 0, refine: int = vae.REFINE_STEPS,
                 iw_fit: int = vae.IW_FIT_STEPS, limit: int | None = None, colormap=None) -> dict:
        """Scores of held-out ``corpus`` (a file or folder of this model's kind): NLL, bits per
        token and perplexity, bits per character, sample or dim; for a VAE also IW-NLL with
        ``iw_samples`` draws from a q fitted to each item for ``iw_fit`` steps, KL, mutual
        information, active units and reconstruction accuracy (also from codes refined ``refine``
        steps). ``loss`` is what training validates on."""
        items = self.items(corpus, colormap)[:limit]
        extra = {"iw_samples": iw_samples, "seed": seed, "refine": refine, "iw_fit": iw_fit} if self.task == "vae" else {}
        return tasks.TASKS[self.task].metrics(self.model, self.codec, items, **extra)

    def items(self, corpus, colormap=None) -> list:
        """The items of ``corpus`` as this model reads them; one clear line if they are of another kind."""
        kind = corpus_kind(corpus, colormap)
        if kind != self.kind:
            raise GenseqError(f"{corpus} holds {kind} but the model is {article(self.kind)} {self.kind} model; "
                              f"give {article(self.kind)} {self.kind} corpus")
        return read_corpus(corpus, kind, sample_rate=getattr(self.codec, "sample_rate", None), colormap=colormap)

    # -- audio -----------------------------------------------------------------------------------
    def continue_(self, clip, seconds: float = 4.0, n: int = 1, *, rate: int | None = None,
                  temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
                  seed: int | None = None, progress: bool = False, warn=None) -> tuple[np.ndarray, int]:
        """``n`` continuations of ``clip``: a WAV, FLAC or OGG path, or a float array (samples,) at
        ``rate`` (default: the model's), resampled and mixed to mono as a file would be.

        Returns:
            ``(waves, rate)``: float32 (n, seconds * rate) continuations without the clip, and the
            model's sample rate.
        """
        self.require("continue", "lm", ("audio",))
        wave = self.read_clip(clip, rate, warn)
        sampling = self.sampling(temperature, top_k, top_p, seed)
        return self._audio(wave, seconds, n, progress, sampling)

    def read_clip(self, clip, rate: int | None = None, warn=None) -> np.ndarray:
        """A path or an array at ``rate`` -> float32 mono at the model's rate; a silent clip,
        which gives a model nothing to continue, is refused. ``warn`` is told of a truncated WAV
        (what its header promised and what was read)."""
        if isinstance(clip, (str, Path)):
            shortfall = wav_shortfall(clip)
            if shortfall is not None and warn is not None:
                warn(f"note: {clip} is truncated: its header promises {shortfall[0]:.2f} s, the file holds "
                     f"{shortfall[1]:.2f} s; continuing the {shortfall[1]:.2f} s read")
            wave = self.codec.read(clip)
        else:
            wave = self.codec.from_array(np.asarray(clip, np.float32), rate or self.codec.sample_rate)
        if np.abs(wave).max() < 1e-4:
            raise GenseqError(f"{clip if isinstance(clip, (str, Path)) else 'the clip'} is silent; "
                              "give a clip with sound in it to continue")
        return wave

    def _audio(self, clip, seconds, n, progress, sampling) -> tuple[np.ndarray, int]:
        waves = tasks.continue_audio(self, clip, seconds, n, progress=progress, **sampling)
        return np.stack(waves), self.codec.sample_rate

    # -- images ----------------------------------------------------------------------------------
    def as_seen(self, image) -> np.ndarray:
        """``image`` (a path, PIL image or array) as the model sees it: scaled to its size, in its
        palette; an RGBA array (H, W, 4)."""
        return self.codec.decode(self.codec.encode(as_rgba(image)))

    def complete(self, image, keep: float = 0.5, n: int = 8, *, temperature: float | None = None,
                 top_k: int | None = None, top_p: float | None = None, seed: int | None = None,
                 progress: bool = False) -> list:
        """``n`` PIL images that keep the top ``keep`` of ``image``'s rows and draw the rest."""
        self.require("complete", "lm", ("image",))
        done = tasks.complete_image(self, self.as_seen(image), keep, n, progress=progress,
                                    **self.sampling(temperature, top_k, top_p, seed))
        return [to_pil(item) for item in done]

    def kept_rows(self, keep: float) -> int:
        """How many rows from the top :meth:`complete` keeps for ``keep``."""
        return tasks.kept_rows(self.codec, keep)

    def traverse(self, dims: tuple[int, int] | None = None, steps: int = 9, span: float = 2.5,
                 start=None) -> list:
        """The lecture's sweep of an image VAE: every code dimension fixed (at the prior's mean, or
        at ``start`` image's refined code) but ``dims`` (default :meth:`busiest_dims`), each swept
        over [-span, span]; ``steps * steps`` PIL images, row by row (the first dimension down)."""
        self.require("traverse", "vae", ("image",))
        code = None if start is None else vae.line_codes(self.model, self.codec, [self.drawn_size(start)],
                                                         vae.REFINE_STEPS)[0]
        images = vae.traverse(self, dims or self.busiest_dims(), steps, span, code)
        return [to_pil(item) for item in images]

    def drawn_size(self, image) -> np.ndarray:
        """``image`` (a path, PIL image or array) as RGBA, refused in one line unless it has the
        size this image VAE draws: a code describes a whole picture, so a scaled one would be a
        different picture."""
        rgba = as_rgba(image)
        if rgba.shape[:2] != (self.codec.height, self.codec.width):
            name = image if isinstance(image, (str, Path)) else "the image"
            raise GenseqError(f"{name} is {rgba.shape[1]}x{rgba.shape[0]} pixels but {self.path.name} draws "
                              f"{self.codec.width}x{self.codec.height}; give an image of that size")
        return rgba

    def busiest_dims(self) -> tuple[int, int]:
        """The two code dimensions whose posterior means vary most over held-out items."""
        self.require("traverse", "vae")
        return vae.busiest_dims(self)

    # -- sentence VAE ------------------------------------------------------------------------------
    def interpolate(self, a, b, steps: int = 8, *, slerp: bool = False,
                    refine: int = vae.REFINE_STEPS, decode: str = "greedy", beam: int = 5,
                    temperature: float | None = None, top_k: int | None = None, top_p: float | None = None,
                    seed: int | None = None, warn=None) -> list:
        """The items decoded at ``steps`` evenly spaced points on the path from a's code to b's
        (refined posterior means; ``slerp`` walks the great circle): lines of a sentence VAE, or
        PIL images of an image VAE (``a`` and ``b`` paths, PIL images or arrays of the model's
        size). ``warn`` receives notes such as characters the model never saw."""
        self.require("interpolate", "vae")
        if self.kind == "image":
            a, b = self.drawn_size(a), self.drawn_size(b)
        path = vae.interpolate(self, a, b, steps, spherical=slerp, warn=warn or (lambda message: None),
                               refine=refine, decode=decode, beam=beam,
                               **self.sampling(temperature, top_k, top_p, seed))
        return [to_pil(item) if self.kind == "image" else item for _, item in path]

    def reconstruct(self, lines: list[str], *, refine: int = vae.REFINE_STEPS, decode: str = "greedy",
                    beam: int = 5, temperature: float | None = None, top_k: int | None = None,
                    top_p: float | None = None, seed: int | None = None, warn=None) -> list[str]:
        """Each line encoded (its refined posterior mean) and decoded back."""
        self.require("reconstruct", "vae", ("text",))
        if isinstance(lines, str):
            lines = [lines]
        return vae.reconstruct(self, list(lines), warn=warn or (lambda message: None), refine=refine,
                               decode=decode, beam=beam, **self.sampling(temperature, top_k, top_p, seed))

    def refit(self, corpus, *, steps: int = 1000, lr: float = vae.REFIT_LR, batch_size: int = 128,
              seed: int = 0, progress: bool = False) -> dict:
        """Fit this VAE's proposal (the q(z|x) its likelihood is measured with) to its decoder on
        ``corpus`` (its training items), in place, going on from the proposal it has or starting
        one from its encoder (:func:`genseq.vae.fit_proposal`); the codes stay as they are.
        Returns the last step's ``rec`` and ``kl``. :meth:`save` writes the result."""
        self.require("refit", "vae")
        torch.manual_seed(seed)
        data, _ = tasks.VAETask.data(self.codec, self.items(corpus), TrainConfig(batch_size=batch_size, seed=seed),
                                     self.model)
        stats = vae.fit_proposal(self.model, data, steps, lr, fresh=False, progress=progress)
        self.model.eval()
        self.record = {**self.record, "refit": stats}
        return stats

    def save(self, path, valid: dict | None = None) -> None:
        """Write the model as a model file (atomically), with ``valid`` as its held-out record."""
        meta = {k: self.record[k] for k in ("corpus", "step", "refit_steps", "refit", "chosen") if k in self.record}
        save_atomic(model_record(self.model, self.codec, self.task, **meta, valid=valid), path)


def load(spec: str | Path, device: str | torch.device = "auto") -> Model:
    """A model by shipped name (``genseq.models()``), model file or run folder, on ``device``
    (``auto``: CUDA, then MPS, then the CPU)."""
    loaded = load_model(str(spec), device if isinstance(device, torch.device) else pick_device(device))
    return Model(loaded.model, loaded.codec, loaded.record, loaded.path)


def models() -> list[str]:
    """The names of the models that ship with genseq."""
    from genseq.store import shipped_models

    return list(shipped_models())


def train(task: str, corpus, out, *, steps: int | None = None, minutes: float | None = None, valid=None,
          valid_fraction: float = 0.05, tokenizer: str = "auto", vocab_size: int | None = None,
          batch_size: int | None = None, lr: float | None = None, seq_len: int | None = None,
          valid_every: int = 250, seed: int = 0, keep_checkpoints: int = 0, checkpoint_minutes: float = 2.0,
          ema: float = 0.0, carry: int = 0,
          precision: str | None = None, compile: bool = False, resume: bool = False, progress: bool = True,
          device: str | torch.device = "auto", refit_steps: int | None = None, sample_rate: int | None = None,
          preemphasis: float | None = None, palette: int | None = None, size: tuple[int, int] | None = None,
          colormap=None, init=None,
          **model_options) -> dict | None:
    """Train a ``task`` (``lm`` or ``vae``) model on ``corpus`` (a text file, a folder of text,
    audio or images) into run folder ``out``, as ``genseq train`` does; returns the held-out
    metrics (None on the non-reporting ranks of a torchrun job).

    ``steps`` or ``minutes`` sets the budget (default 2,000 steps). ``model_options`` are the
    model's own settings (``hidden_size``, ``embed_dim``, ``num_layers``, ``latent_dim``,
    ``free_bits`` ...). Settings left None or absent are chosen for the corpus, the device and the
    budget (:func:`genseq.sizing.choose`, which the run reports in one line), else take the task's
    and the dataclasses' defaults; ``sample_rate``, ``preemphasis``, ``palette`` and ``size`` the
    codec's.
    ``init`` (a model file, run folder or shipped name) fine-tunes that model instead of a new one.
    """
    if task not in tasks.TASKS:
        raise GenseqError(f"unknown task {task!r}; choose lm or vae")
    if steps is not None and minutes is not None:
        raise GenseqError("give --steps or --minutes, not both")
    if steps is None and minutes is None:
        steps = 2000
    config = TrainConfig(steps=steps, minutes=minutes, batch_size=batch_size, seq_len=seq_len, lr=lr,
                         valid_every=valid_every, seed=seed,
                         keep_checkpoints=keep_checkpoints, checkpoint_minutes=checkpoint_minutes,
                         precision=precision, compile=compile, ema=ema, carry=carry)
    codec_options = dict(tokenizer=tokenizer, vocab_size=vocab_size, sample_rate=sample_rate,
                         preemphasis=preemphasis, palette=palette, size=size, colormap=colormap)
    try:
        return tasks.train(task, corpus, out, model_config=model_options, train_config=config, valid=valid,
                           valid_fraction=valid_fraction, codec_options=codec_options,
                           device=device if isinstance(device, torch.device) else pick_device(device),
                           resume=resume, progress=progress, refit_steps=refit_steps, init=init)
    finally:
        distributed.teardown()
