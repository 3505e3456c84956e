#!/usr/bin/env python3
"""A folder of photo-sized JPEGs for timing `descent cnn --images` (decoding, the cache).

Writes OUT/<class>/<n>.jpg: --classes sub-folders, --count pictures in all, each --width x
--height RGB at JPEG quality 90, drawn from the seed (a smooth colour gradient, a few ellipses
and noise, so the files compress like photos rather than like flat colour). About 55 KB each at
500x375. Needs Pillow and numpy (both in tests/interop/requirements.txt).

Usage: python bench/photos.py OUT [--count 1000] [--classes 4] [--width 500] [--height 375] [--seed 0]
"""
import argparse
import os

import numpy as np
from PIL import Image, ImageDraw


def picture(rng, width, height):
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, size=3)
    slope = rng.uniform(-0.4, 0.4, size=(3, 2))
    rgb = np.stack([base[c] + slope[c, 0] * xs + slope[c, 1] * ys for c in range(3)], axis=-1)
    rgb += rng.normal(0, 12, size=rgb.shape)
    img = Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    for _ in range(rng.integers(2, 6)):
        x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(20, width / 2), rng.uniform(20, height / 2)
        colour = tuple(int(v) for v in rng.integers(0, 256, size=3))
        draw.ellipse([x0, y0, x0 + w, y0 + h], fill=colour)
    return img


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--width", type=int, default=500)
    p.add_argument("--height", type=int, default=375)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    if args.count < args.classes or args.classes < 2:
        p.error("--classes must be at least 2 and at most --count")
    rng = np.random.default_rng(args.seed)
    total = 0
    for n in range(args.count):
        folder = os.path.join(args.out, f"class{n % args.classes}")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"{n:05}.jpg")
        picture(rng, args.width, args.height).save(path, quality=90)
        total += os.path.getsize(path)
    print(f"{args.count} JPEGs of {args.width}x{args.height} in {args.out} ({total / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
