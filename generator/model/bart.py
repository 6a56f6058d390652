"""DalleBart: the text encoder and the image-token decoder, as one module whose state dict is the
converted checkpoint (keys ``encoder.*`` and ``decoder.*``, ``decoder.lm_head`` included)."""

from __future__ import annotations

from torch import nn

from generator.model.config import DalleBartConfig
from generator.model.decoder import DalleBartDecoder
from generator.model.encoder import DalleBartEncoder


class DalleBart(nn.Module):
    def __init__(self, config: DalleBartConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = DalleBartEncoder(config)
        self.decoder = DalleBartDecoder(config)
