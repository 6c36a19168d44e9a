"""Model architectures that no library ships, written once: the forge builds them, the scorers load them.

``AestheticMLP`` is the LAION "improved aesthetic predictor" (C. Schuhmann) with the published
state-dict keys (``layers.0``, ``layers.2``, ``layers.4``, ``layers.6``, ``layers.7``), so
``sac+logos+ava1-l14-linearMSE.pth`` loads strictly.
"""

from __future__ import annotations

import torch


class AestheticMLP(torch.nn.Module):
    """The published predictor: five linear layers, dropout between, no activations."""

    def __init__(self, input_size: int = 768) -> None:
        super().__init__()
        self.input_size = input_size
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(input_size, 1024),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(1024, 128),
            torch.nn.Dropout(0.2),
            torch.nn.Linear(128, 64),
            torch.nn.Dropout(0.1),
            torch.nn.Linear(64, 16),
            torch.nn.Linear(16, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)
