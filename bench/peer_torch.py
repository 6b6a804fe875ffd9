#!/usr/bin/env python3
"""PyTorch peer for `deno task bench`: the same DeiT shape, the same two measurements, on the same machine.

Written here for the comparison (timm cannot be installed on these machines): a plain PyTorch ViT/DeiT with the
architecture of timm's VisionTransformer (patch conv, one qkv Linear, exact GELU, LayerNorm eps 1e-6, class and
optional distillation token). Inference: eval mode, no_grad, float32, warm-up, mean time of a batch over the
runs. Training: mean time of a full step (forward, cross-entropy on both heads, backward, AdamW).

Needs Debian's python3-torch (1.13) and libopenblas0-pthread. On a GPU (bench/gpu_check.sh), `--device cuda`
times with CUDA synchronised around each run, `--amp` under bfloat16/float16 autocast (mixed precision), and peak
device memory is reported.
  python3 bench/peer_torch.py --model deit_tiny_patch16_224 --mode infer --batch-size 32 --json
  python3 bench/peer_torch.py --model deit_tiny_patch16_224 --mode train --batch-size 128 --device cuda --amp
"""
import argparse
import json
import os
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

# Same shapes as lib/models/registry.ts.
MODELS = {
    "deit_tiny_patch16_224": dict(img=224, patch=16, dim=192, depth=12, heads=3, classes=1000, distilled=False),
    "deit_small_patch16_224": dict(img=224, patch=16, dim=384, depth=12, heads=6, classes=1000, distilled=False),
    "deit_base_patch16_224": dict(img=224, patch=16, dim=768, depth=12, heads=12, classes=1000, distilled=False),
    "deit_tiny_distilled_patch16_224": dict(img=224, patch=16, dim=192, depth=12, heads=3, classes=1000,
                                            distilled=True),
    "deit_mini_patch4_28": dict(img=28, patch=4, dim=96, depth=6, heads=3, classes=10, distilled=False),
    "deit_mini_distilled_patch4_28": dict(img=28, patch=4, dim=96, depth=6, heads=3, classes=10, distilled=True),
    "deit_micro_patch7_28": dict(img=28, patch=7, dim=64, depth=6, heads=2, classes=10, distilled=False),
}


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, 4 * dim)
        self.fc2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * (d // self.heads) ** -0.5).softmax(dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class DeiT(nn.Module):
    def __init__(self, img, patch, dim, depth, heads, classes, distilled):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, patch)
        prefix = 2 if distilled else 1
        self.tokens = nn.Parameter(torch.zeros(1, prefix, dim))
        self.pos = nn.Parameter(torch.zeros(1, (img // patch) ** 2 + prefix, dim))
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)
        self.head_dist = nn.Linear(dim, classes) if distilled else None

    def forward(self, x):
        x = self.proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.tokens.expand(x.shape[0], -1, -1), x], dim=1) + self.pos
        x = self.norm(self.blocks(x))
        cls = self.head(x[:, 0])
        return (cls, self.head_dist(x[:, 1])) if self.head_dist is not None else (cls,)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True, choices=sorted(MODELS))
    ap.add_argument("--mode", choices=["infer", "train"], default="infer")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="intra-op threads (default: every core; Debian's torch otherwise starts with 1 here)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    ap.add_argument("--amp", action="store_true", help="mixed precision (autocast to bfloat16 on CUDA)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    dev = torch.device(a.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = MODELS[a.model]
    model = DeiT(**cfg).to(dev)
    x = torch.randn(a.batch_size, 3, cfg["img"], cfg["img"], device=dev)
    y = torch.arange(a.batch_size, device=dev) % cfg["classes"]
    amp_dtype = torch.bfloat16
    autocast = (lambda: torch.autocast(dev.type, dtype=amp_dtype)) if a.amp else None
    if a.mode == "train":
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)

        def once():
            if autocast:
                with autocast():
                    out = model(x)
                    loss = sum(F.cross_entropy(o.float(), y) for o in out) / len(out)
            else:
                out = model(x)
                loss = sum(F.cross_entropy(o, y) for o in out) / len(out)
            opt.zero_grad()
            loss.backward()
            opt.step()
    else:
        model.eval()

        def once():
            with torch.no_grad():
                if autocast:
                    with autocast():
                        model(x)
                else:
                    model(x)
    for _ in range(a.warmup):
        once()
    sync()
    if cuda:
        torch.cuda.reset_peak_memory_stats(dev)
    times = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        once()
        sync()
        times.append((time.perf_counter() - t0) * 1000)
    mean = sum(times) / len(times)
    backend = (f"pytorch {torch.__version__} {torch.cuda.get_device_name(dev)}" if cuda
               else f"pytorch {torch.__version__} ({torch.get_num_threads()} threads)") + (" amp bf16" if a.amp else "")
    r = dict(model=a.model, mode=a.mode, backend=backend, precision="bf16-autocast" if a.amp else "fp32",
             batch_size=a.batch_size, img_size=cfg["img"], images_per_s=a.batch_size / mean * 1000, step_ms=mean,
             min_ms=min(times), max_ms=max(times), runs=a.runs,
             peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
             **({"peak_device_mb": torch.cuda.max_memory_allocated(dev) / 2**20} if cuda else {}))
    print(json.dumps(r) if a.json else
          f"{a.model} {a.mode} {r['backend']} batch {a.batch_size}: {r['images_per_s']:.2f} images/s, "
          f"{mean:.1f} ms ({a.runs} runs)")


if __name__ == "__main__":
    main()
