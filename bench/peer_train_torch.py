#!/usr/bin/env python3
"""Training-curve peer: the small DeiT of the Fashion-MNIST configs trained in plain PyTorch with the plain recipe.

A sanity check for lib/train (not a benchmark): same model shape as bench/peer_torch.py, timm's init (truncated
normal 0.02 for Linear weights, position embedding and tokens; zero biases), ImageNet mean/std on the grey image
repeated to 3 channels, AdamW with DeiT's no-decay rule, constant learning rate, no augmentation. Prints test
top-1 after the given steps, to set beside
  deno task train --config fmnist-vit-plain --epochs 1 --warmup_epochs 0 --train_limit N ...

  /usr/bin/python3 bench/peer_train_torch.py --steps 50 --lr 1e-3
"""
import argparse
import gzip
import os

import numpy as np
import torch
import torch.nn.functional as F

from peer_torch import MODELS, DeiT

FMNIST = "/usr/share/datasets/fashion-mnist"


def idx(name):
    path = os.path.join(FMNIST, name)
    opener = gzip.open if not os.path.exists(path) else open
    with opener(path if os.path.exists(path) else path + ".gz", "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def images(name):
    x = torch.from_numpy(idx(name).astype(np.float32) / 255).unsqueeze(1).repeat(1, 3, 1, 1)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="deit_mini_patch4_28")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--eval-limit", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--augment", action="store_true",
                    help="DeiT's small-image rule: random crop with zero padding 4 (of the normalised image) + flip")
    a = ap.parse_args()
    torch.manual_seed(a.seed)
    torch.set_num_threads(os.cpu_count())
    model = DeiT(**MODELS[a.model])
    for n, p in model.named_parameters():
        if p.dim() > 1 and "proj.weight" != n or n in ("pos", "tokens"):
            torch.nn.init.trunc_normal_(p, std=0.02)
        elif n.endswith("bias"):
            torch.nn.init.zeros_(p)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1 and n not in ("pos", "tokens")]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() > 1 and n not in ("pos", "tokens"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr)
    xtr, ytr = images("train-images-idx3-ubyte"), torch.from_numpy(idx("train-labels-idx1-ubyte").astype(np.int64))
    xte, yte = images("t10k-images-idx3-ubyte")[:a.eval_limit], \
        torch.from_numpy(idx("t10k-labels-idx1-ubyte").astype(np.int64))[:a.eval_limit]
    g = torch.Generator().manual_seed(a.seed)
    order = torch.randperm(len(xtr), generator=g)
    model.train()
    for step in range(a.steps):
        sel = order[(step * a.batch_size) % len(xtr):][:a.batch_size]
        x = xtr[sel]
        if a.augment:
            padded = F.pad(x, (4, 4, 4, 4))
            dy, dx = torch.randint(0, 9, (2, len(x)), generator=g)
            x = torch.stack([padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28] for i in range(len(x))])
            flip = torch.rand(len(x), generator=g) < 0.5
            x[flip] = x[flip].flip(-1)
        loss = F.cross_entropy(model(x)[0], ytr[sel])
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = sum((model(xte[i:i + 500])[0].argmax(1) == yte[i:i + 500]).sum().item()
                  for i in range(0, len(xte), 500))
    print(f"{a.model} plain recipe{' + crop/flip' if a.augment else ''}, {a.steps} steps of {a.batch_size} at lr {a.lr}: "
          f"train loss {loss.item():.4f}, test top-1 {100 * acc / len(xte):.2f}% ({len(xte)} images)")


if __name__ == "__main__":
    main()
