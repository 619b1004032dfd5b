"""The interface every codec implements."""

import math
from abc import ABC, abstractmethod

import torch

# The ids every codec's vocabulary keeps for sequence markup: padding, unknown, begin and end of an
# item. SentencePiece is told them; an image codec for a VAE starts its colours after them.
PAD, UNK, BOS, EOS = 0, 1, 2, 3


class Codec(ABC):
    """Maps items of one modality (a line, a clip, an image) to token ids and back.

    Subclasses set ``kind`` (the name stored in model files) and ``unit`` (what one token is, for
    metrics such as bits per sample or bits per dim).
    """

    kind: str
    unit: str
    stop_id: int | None = None  # the id that ends one item during generation, if any
    window: int = 128  # tokens per training window of a language model over the stream

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of distinct token ids; ids lie in ``[0, vocab_size)``."""

    @abstractmethod
    def encode(self, item) -> list[int]:
        """One item to its token ids."""

    @abstractmethod
    def decode(self, ids) -> object:
        """Token ids back to an item, up to the codec's quantisation."""

    @abstractmethod
    def encode_stream(self, items) -> torch.Tensor:
        """Many items to one 1-D stream of ids, with whatever separators the modality needs.

        Language models train on windows of this stream and evaluate over all of it.
        """

    @abstractmethod
    def prime(self, prefix=None) -> list[int]:
        """The ids that start generation: the stream's start context, then ``prefix`` if given."""

    def counts(self, items) -> dict[str, int]:
        """Sizes of ``items`` in the units people quote besides tokens (``{"char": n}`` for
        text), so that models with different codecs can be compared per unit."""
        return {}

    def unit_metrics(self, nats: float, items) -> dict:
        """A held-out NLL of ``nats`` over ``items`` in the units people quote for this modality:
        by default the count and bits per unit of each of :meth:`counts` (bits per character)."""
        metrics = {}
        for unit, count in self.counts(items).items():
            metrics[f"{unit}s"] = count
            metrics[f"bits_per_{unit}"] = nats / math.log(2) / count
        return metrics

    recon_unit = "token"  # what reconstruction accuracy counts: recon_<unit>_accuracy

    def recon_units(self, item) -> list:
        """``item`` as the units that reconstruction accuracy compares position by position."""
        return self.encode(item)

    def greedy_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (..., V) as greedy decoding should read them; by default unchanged."""
        return logits

    @abstractmethod
    def state_dict(self) -> dict:
        """Everything needed to rebuild the codec, as numbers, strings and bytes (no pickled
        objects): it is stored in the model file and loaded with ``weights_only=True``."""

    @classmethod
    @abstractmethod
    def from_state(cls, state: dict) -> "Codec":
        """Inverse of :meth:`state_dict`."""
