"""What Pillow makes of a picture, for the image-folder tests: the oracle descent's decoding is checked against.

    python decode.py --side S --channels C FILE...
        each FILE as descent prepares a picture for training: decode; apply the EXIF orientation
        (ImageOps.exif_transpose); convert to RGBA and composite over white; convert to RGB; resize
        to S x S (squashed, not cropped) with Pillow's BILINEAR filter, whose support widens when
        downscaling; with C = 1, convert to grey with Pillow's "L" (R*299/1000 + G*587/1000 + B*114/1000).
        Prints {"FILE": [C*S*S floats in [0, 1] (byte / 255), channel-major, row-major within a channel], ...}.
    python decode.py make-fixtures OUTDIR
        writes small hand-made pictures to OUTDIR: rgb.png, palette_alpha.png, photo.jpg,
        rotated.jpg (EXIF orientation 6) and grey.png.
"""

import argparse
import json
import os
import sys

from PIL import Image, ImageOps


def prepare(path, side, channels):
    """The picture at `path` as a flat channel-major list of `channels * side * side` floats in [0, 1]."""
    with Image.open(path) as picture:
        picture = ImageOps.exif_transpose(picture)
        white = Image.new("RGBA", picture.size, "white")
        rgb = Image.alpha_composite(white, picture.convert("RGBA")).convert("RGB")
    resized = rgb.resize((side, side), Image.Resampling.BILINEAR)
    if channels == 1:
        resized = resized.convert("L")
    return [byte / 255 for band in resized.split() for byte in band.tobytes()]


def decode(argv):
    parser = argparse.ArgumentParser(description="Pillow's view of pictures, as descent prepares them.")
    parser.add_argument("--side", type=int, required=True, help="output width and height in pixels")
    parser.add_argument("--channels", type=int, choices=(1, 3), required=True, help="1: grey (L), 3: RGB")
    parser.add_argument("files", nargs="+", metavar="FILE")
    args = parser.parse_args(argv)
    values = {}
    for path in args.files:
        try:
            values[path] = prepare(path, args.side, args.channels)
        except OSError as err:
            sys.exit(f"decode.py: cannot read {path}: {err}")
    print(json.dumps(values))


def make_fixtures(outdir):
    os.makedirs(outdir, exist_ok=True)

    def save(picture, name, **options):
        picture.save(os.path.join(outdir, name), **options)

    def picture(mode, width, height, pixel):
        made = Image.new(mode, (width, height))
        made.putdata([pixel(x, y) for y in range(height) for x in range(width)])
        return made

    # Every pixel different: a swapped axis or channel shows.
    save(picture("RGB", 7, 5, lambda x, y: (10 + 35 * x, 10 + 60 * y, (7 * x + 11 * y) * 6 % 256)), "rgb.png")

    # A palette with a tRNS entry per colour: opaque, half, fully and a quarter transparent.
    palette = picture("P", 6, 4, lambda x, y: (x + y) % 4)
    palette.putpalette([255, 0, 0, 0, 160, 0, 0, 0, 255, 240, 200, 20])
    save(palette, "palette_alpha.png", transparency=bytes([255, 128, 0, 64]))

    # Smooth gradients, 4:4:4 (no chroma subsampling): JPEG decoders differ most in how they
    # upsample chroma, and a smooth picture keeps their IDCT differences to about one level.
    photo = picture("RGB", 13, 9, lambda x, y: (40 + 12 * x, 60 + 15 * y, 200 - 6 * x - 5 * y))
    save(photo, "photo.jpg", quality=95, subsampling=0)

    # Stored 12 wide and 8 high; orientation 6 says "rotate 90 degrees clockwise to display",
    # so the displayed picture is 8 wide and 12 high, red growing downwards.
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation
    rotated = picture("RGB", 12, 8, lambda x, y: (30 + 18 * x, 40 + 20 * y, 120))
    save(rotated, "rotated.jpg", quality=95, subsampling=0, exif=exif.tobytes())

    save(picture("L", 9, 6, lambda x, y: 20 * x + 10 * y + 5), "grey.png")


if __name__ == "__main__":
    if sys.argv[1:2] == ["make-fixtures"] and len(sys.argv) == 3:
        make_fixtures(sys.argv[2])
    else:
        decode(sys.argv[1:])
