"""Convert BeatNet's CRNN weights (PyTorch state dict) to the compact numpy file that
``music2video.beatnet`` loads, so neither torch nor madmom is needed at run time.

Source: BeatNet 1.1.3 on PyPI (https://pypi.org/project/BeatNet/1.1.3/, wheel
``BeatNet-1.1.3-py3-none-any.whl``), file ``BeatNet/models/model_3_weights.pt``, by Mojtaba
Heydari, Frank Cwitkowitz and Zhiyao Duan, "BeatNet: CRNN and particle filtering for online
joint beat downbeat and meter tracking", ISMIR 2021. Licence: CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/), as the wheel's LICENSE says. Changes made:
the tensors are stored as float16 (the network's output moves by under 1e-3, see
tests/test_beatnet.py) under the same names; nothing else.

Model 3 is the one trained with the Rock corpus held out (so with GTZAN and Ballroom in its
training data); models 1 and 2 hold out GTZAN and Ballroom. All three are shipped and averaged
(see src/music2video/data/beatnet/README.md).

    pip download BeatNet==1.1.3 --no-deps && unzip BeatNet-1.1.3-py3-none-any.whl -d /tmp/bn
    for n in 1 2 3; do python benchmarks/beatnet/convert_weights.py /tmp/bn/BeatNet/models/model_${n}_weights.pt; done

needs torch (only for reading the .pt file).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

OUT_DIR = Path(__file__).resolve().parents[2] / "src" / "music2video" / "data" / "beatnet"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("weights", type=Path, help="BeatNet/models/model_N_weights.pt from the BeatNet 1.1.3 wheel")
    parser.add_argument("--out", type=Path, help="default: data/beatnet/beatnet_modelN.npz for model_N_weights.pt")
    args = parser.parse_args()
    if args.out is None:
        args.out = OUT_DIR / f"beatnet_model{args.weights.name.split('_')[1]}.npz"
    import torch

    state = torch.load(args.weights, map_location="cpu", weights_only=True)
    arrays = {name.replace(".", "_"): tensor.numpy().astype(np.float16) for name, tensor in state.items()}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    digest = hashlib.sha256(args.weights.read_bytes()).hexdigest()
    print(f"{args.out}: {args.out.stat().st_size / 1e6:.2f} MB from {args.weights} (sha256 {digest})")


if __name__ == "__main__":
    main()
