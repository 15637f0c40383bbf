"""The README's picture of the console (docs/console.png): a fusion on the Try page.

Drives Debian's Chromium (Playwright, like tests/test_console.py) against a running
service and photographs the Try page after fusing SELFIE into the demo template, shrunk
to a few hundred kilobytes. Only public-domain photos belong in docs/: the demo template
(Grace Hopper, matplotlib) and, for the README's, scikit-image's `data/astronaut.png`
(Eileen Collins, NASA, public domain) taken from its wheel:

    pip download --no-deps scikit-image && unzip -j scikit_image-*.whl skimage/data/astronaut.png
    python benchmarks/console_screenshot.py --api-key K --api-secret S --selfie astronaut.png
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from PIL import Image
from playwright.sync_api import expect, sync_playwright

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
VIEWPORT = {"width": 1280, "height": 860}
OUT_WIDTH = 960  # readable on GitHub's README column, small in the repository
COLOURS = 256  # a palette PNG: a third of the bytes of full colour, dithered
FUSION_TIMEOUT_MS = 120_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-url", default="http://127.0.0.1:8080")
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--api-secret", required=True)
    parser.add_argument("--selfie", type=Path, required=True)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--out", type=Path, default=Path("docs/console.png"))
    args = parser.parse_args()

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport=VIEWPORT)
        page.goto(args.base_url + "/")
        page.locator("#api-key").fill(args.api_key)
        page.locator("#api-secret").fill(args.api_secret)
        page.get_by_role("button", name="Sign in").click()
        expect(page.locator("#gallery img").first).not_to_have_js_property("naturalWidth", 0)
        page.locator("#selfie-file").set_input_files(args.selfie)
        page.get_by_role("button", name="Fuse", exact=True).click()
        result = page.get_by_alt_text("After: the fused result")
        expect(result).to_be_visible(timeout=FUSION_TIMEOUT_MS)
        expect(result).not_to_have_js_property("naturalWidth", 0)
        page.mouse.move(0, 0)  # no hover highlight in the picture
        png = page.screenshot(full_page=True)
        browser.close()

    with Image.open(io.BytesIO(png)) as shot:
        height = round(shot.height * OUT_WIDTH / shot.width)
        small = shot.convert("RGB").resize((OUT_WIDTH, height), Image.Resampling.LANCZOS)
        small.quantize(COLOURS, method=Image.Quantize.MEDIANCUT).save(args.out, optimize=True)
    print(f"{args.out}: {args.out.stat().st_size // 1024} KB")


if __name__ == "__main__":
    main()
