"""Writes docs/page/*.png, screenshots of the interactive page: `python docs/make_page_screenshots.py`.

Each network's page (`archc draw SPEC --variant V -o V.html`) as it first
opens in a 1400 x 1000 window of headless Chromium (Debian: apt-get install
chromium chromium-driver), and DenseNet-121 after "expand all". Needs
selenium (in archc's test extras).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import archc  # noqa: E402
from archc.backends.diagram import draw  # noqa: E402

OUT = ROOT / "docs" / "page"
SHOTS = [  # (spec, variant, what to do before the screenshot, file)
    ("densenet", "densenet121", None, "densenet121.png"),
    ("efficientnet", "efficientnet_b0", None, "efficientnet_b0.png"),
    ("swin", "swin_t", "features.5", "swin_t.png"),  # the third stage open: its six blocks, folded
    ("resnet", "resnet50", "layer3", "resnet50.png"),  # layer3 open: its first block and a fold of five
    ("vit", "vit_b_16", None, "vit_b_16.png"),
    ("densenet", "densenet121", "expand-all", "densenet121_expanded.png"),
]


def browser(profile: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))))
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,1000",
                 "--force-device-scale-factor=1", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def main() -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        driver = browser(str(Path(tmp) / "profile"))
        try:
            for name, variant, action, file in SHOTS:
                page = Path(tmp) / f"{variant}.html"
                page.write_bytes(draw.draw(archc.load(ROOT / "specs" / f"{name}.arch"), variant, "html"))
                driver.get(page.as_uri())
                WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.body.dataset.ready"))
                if action == "expand-all":
                    driver.find_element("id", "expand-all").click()
                elif action is not None:  # open a box by its module path
                    driver.execute_script("document.querySelector(`#diagram [data-id='${arguments[0]}']`)"
                                          ".dispatchEvent(new MouseEvent('click', {bubbles: true}))", action)
                driver.save_screenshot(str(OUT / file))
                print(f"wrote docs/page/{file}")
        finally:
            driver.quit()


if __name__ == "__main__":
    main()
