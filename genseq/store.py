"""Model files and checkpoints: one self-contained dict each, written atomically, loaded safely.

A model file holds the format version, the task (``lm``), the model family and its config, the
weights, the codec state and a few facts about the corpus and held-out scores. A checkpoint adds the
optimizer, scheduler, step and RNG states. Both hold only tensors, numbers, strings and bytes, and
are read with ``torch.load(weights_only=True)``: a model file is data, never code.
"""

import errno
import os
import pickle
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from genseq.codecs import Codec, codec_from_state
from genseq.errors import GenseqError
from genseq.models import build_model, model_config

FORMAT = "genseq"
VERSION = 1
MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
BEST_FILE = "best.pt"  # the model at its best validation loss
PRETRAINED_DIR = Path(__file__).parent / "pretrained"


def writable_folder(folder, action: str) -> None:
    """Make ``folder`` (and its parents) and check it can be written, before any work; ``action``
    says what would fail in the error (``create the run folder runs/x``, ``write out.wav``)."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise GenseqError(f"cannot {action} ({e.strerror}); choose another -o") from None
    if not os.access(folder, os.W_OK):
        raise GenseqError(f"cannot {action} (the folder is not writable); choose another -o")


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path`` to write; if the block succeeds, flush the file to
    disk and rename it over ``path``. A crash at any moment leaves either the old complete file
    or the new one, never half of it. Model files, checkpoints, WAVs and PNGs all go through here."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix + ".tmp")
    except OSError as e:
        raise GenseqError(f"cannot write {path} ({e.strerror}); choose another -o") from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would make shared files unreadable to others
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def save_atomic(obj: dict, path) -> None:
    """``torch.save`` through :func:`atomic_path`. A write that fails (a full disk, a quota) ends
    in one line that names the file and says what was kept."""
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            torch.save(obj, tmp)
    except (OSError, RuntimeError) as e:  # torch reports a short write as RuntimeError
        full = getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "unexpected pos" in str(e) \
            or "write failed" in str(e) or disk_is_full(path.parent)
        reason = "the disk is full" if full else (getattr(e, "strerror", None) or str(e).splitlines()[0])
        kept = f"the previous {path.name} is kept whole" if path.exists() else f"no {path.name} was written"
        raise GenseqError(f"cannot write {path} ({reason}); {kept}. Free some space and run again "
                          "(--resume continues a training run from its last checkpoint)") from None


def disk_is_full(folder: Path, margin: int = 1 << 20) -> bool:
    try:
        return shutil.disk_usage(folder).free < margin
    except OSError:
        return False


def read_file(path) -> dict:
    """Load a genseq model or checkpoint file, refusing anything else with a clear message."""
    path = Path(path)
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        found = re.search(r"GLOBAL (\S+)", str(e))
        if found:
            raise GenseqError(f"{path} is not a genseq model: it asks to load {found.group(1)}, and "
                              "genseq refuses files holding anything but tensors, numbers and strings") from None
        raise GenseqError(f"{path} is not a genseq model file (or it is damaged); "
                          "give a model.pt written by genseq") from None
    except OSError as e:
        raise GenseqError(f"cannot read {path} ({e.strerror}); check the path and its permissions") from None
    except Exception:  # the unpickler fails in many ways on bytes that are not a torch file
        raise GenseqError(f"{path} is not a genseq model file (or it is damaged); "
                          "give a model.pt written by genseq") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise GenseqError(f"{path} is not a genseq model file; give a model.pt written by genseq")
    if record.get("version") != VERSION:
        raise GenseqError(f"{path} is a genseq model of format version {record.get('version')}, "
                          f"this genseq reads version {VERSION}; use a matching genseq")
    return record


def shipped_models() -> dict[str, Path]:
    """Name -> file of every model that ships with the package."""
    return {p.stem: p for p in sorted(PRETRAINED_DIR.glob("*.pt"))}


def resolve(spec: str) -> Path:
    """A ``-m`` argument (model file, run folder or shipped model name) -> the model file."""
    path = Path(spec)
    if path.is_dir():
        if not (path / MODEL_FILE).is_file():
            raise GenseqError(f"{path} holds no {MODEL_FILE}; train a model there first "
                              "(genseq train lm CORPUS -o RUN)")
        return path / MODEL_FILE
    if path.is_file():
        return path
    shipped = shipped_models()
    if spec in shipped:
        return shipped[spec]
    names = ", ".join(shipped) or "none yet"
    raise GenseqError(f"no model file, run folder or shipped model named {spec!r} "
                      f"(shipped models: {names}); see genseq models")


def model_record(model, codec: Codec, task: str, **meta) -> dict:
    """The self-contained dict stored in a model file; ``meta`` adds corpus facts and scores."""
    return {"format": FORMAT, "version": VERSION, "task": task, "family": model.family,
            "config": model_config(model), "model": model.state_dict(),
            "codec": codec.state_dict(), **meta}


@dataclass
class Loaded:
    model: torch.nn.Module
    codec: Codec
    record: dict
    path: Path


def read_model(spec: str) -> tuple[Path, dict]:
    """Resolve ``spec`` and read the model file, its weights checked against its config."""
    path = resolve(spec)
    record = read_file(path)
    check_shapes(record, path)
    return path, record


def build_from(record: dict) -> torch.nn.Module:
    """The model a model file (or a checkpoint) describes, with its weights as float32."""
    model = build_model(record["family"], record["config"])
    model.load_state_dict(dequantize(record))
    return model


def load_model(spec: str, device: str | torch.device = "cpu") -> Loaded:
    """Resolve ``spec``, read the file and rebuild the model (in eval mode) and its codec.
    :func:`genseq.load` wraps the result in a :class:`genseq.Model`, which checks what each job
    needs of it."""
    path, record = read_model(spec)
    return Loaded(build_from(record).to(device).eval(), codec_from_state(record["codec"]), record, path)


def check_shapes(record: dict, path) -> None:
    """Refuse a file whose stored config asks for other tensors than its weights hold, before
    anything is allocated: the model is built on PyTorch's meta device, which holds shapes only,
    so a config that claims 400,000 hidden units costs nothing to check."""
    with torch.device("meta"):
        expected = build_model(record["family"], record["config"]).state_dict()
    stored = record.get("model") or {}
    wrong = sorted(set(expected) ^ set(stored)) or [name for name in expected
                                                    if tuple(expected[name].shape) != tuple(stored[name].shape)]
    if wrong:
        raise GenseqError(f"{path}: the weights do not match the stored config ({wrong[0]} differs); the file "
                          "is damaged, use another copy")


PRECISIONS = ("float32", "float16", "int8")


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-row int8: (codes, float32 scales) with weight ~= codes * scales[:, None]."""
    rows = weight.float().flatten(1)
    scales = rows.abs().amax(1).clamp(min=1e-12) / 127
    return (rows / scales[:, None]).round().to(torch.int8).view(weight.shape), scales


def dequantize(record: dict) -> dict:
    """The float32 state dict of a model file, undoing ``export_model``'s int8 or float16 storage."""
    scales = record.get("int8_scales", {})
    weights = {}
    for name, tensor in record["model"].items():
        if name in scales:
            tensor = (tensor.float().flatten(1) * scales[name][:, None]).view(tensor.shape)
        weights[name] = tensor.float() if tensor.is_floating_point() else tensor
    return weights


def sampling_flags(record: dict) -> str:
    """The model file's own sampling settings as the flags that say them (`` --temperature 0.9``),
    for a listing or a command shown beside its output; "" when it has none."""
    return "".join(f" --{k.replace('_', '-')} {v:g}" for k, v in (record.get("sampling") or {}).items())


def export_model(spec: str, target, precision: str = "float16", valid: dict | None = None,
                 sampling: dict | None = None) -> int:
    """Copy a model file (resolved from ``spec``) to ``target`` without training state, its weights
    stored as ``float32``, ``float16`` or per-row ``int8`` (matrices; vectors stay float16).
    Loading restores float32. ``valid``: held-out scores to store in place of the training run's;
    ``sampling``: how the model samples unless told otherwise (``{"temperature": 0.9}``), over its
    own. Returns the new file's size in bytes."""
    record = read_file(resolve(spec))
    keep = {k: v for k, v in record.items() if k in ("format", "version", "task", "family", "config",
                                                      "model", "codec", "corpus", "valid", "step", "refit",
                                                      "chosen", "sampling", "init")}
    if valid is not None:
        keep["valid"] = {**valid, "step": record.get("step")}
    if sampling:
        keep["sampling"] = {**record.get("sampling", {}), **sampling}
    weights = dequantize(record)
    if precision == "float16":
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    elif precision == "int8":
        keep["int8_scales"] = {}
        for name, tensor in weights.items():
            if tensor.is_floating_point() and tensor.dim() >= 2:
                weights[name], keep["int8_scales"][name] = quantize_int8(tensor)
            elif tensor.is_floating_point():
                weights[name] = tensor.half()
    keep["model"] = weights
    save_atomic(keep, target)
    return Path(target).stat().st_size
