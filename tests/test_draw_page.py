"""archc draw -o net.html: what the page opens at, its folds, search, keys, export and labels (data model and,
where Chromium is installed, the page itself)."""

import json

import pytest
from archtest import spec
from test_draw_html import browser, data_of, open_page  # noqa: F401  (browser: a fixture)
from test_draw_labels import swin_fixed  # noqa: F401  (a fixture: Swin V2 with its attention one module)
from test_draw_size import shipped_variants

from archc.backends.diagram import draw
from archc.backends.diagram import page as drawhtml
from archc.backends.diagram.calls import Signatures


def data(name: str, variant: str, depth: int | None = None) -> dict:
    s = spec(name)
    return drawhtml.page_data(s.graph(variant), depth, signatures=Signatures.of_spec(s))


def first_screen(d: dict) -> tuple[list[str], list[str]]:
    """(the boxes open at first, the boxes and leaves on the level shown: a folded run once)."""
    items = d["items"]
    level = items[d["open"][-1]]["ch"] if d["open"] else [i for i, it in enumerate(items) if it["p"] < 0]
    shown = [items[i]["id"] for i in level if items[i]["k"] in ("box", "leaf") and "f" not in items[i]]
    return [items[i]["id"] for i in d["open"]], shown


def stages(d: dict) -> int:
    """How many blocks or seqs the first screen shows, a folded run counting its members."""
    items = d["items"]
    level = items[d["open"][-1]]["ch"] if d["open"] else [i for i, it in enumerate(items) if it["p"] < 0]
    return sum(1 for i in level if items[i]["k"] in ("box", "leaf"))


@pytest.mark.parametrize(("name", "variant", "opened", "shown"), [
    ("densenet", "densenet121", ["features"],
     ["features.denseblock1", "features.transition1", "features.denseblock2", "features.transition2",
      "features.denseblock3", "features.transition3", "features.denseblock4"]),
    ("efficientnet", "efficientnet_b0", ["features"], [f"features.{i}" for i in range(9)]),
    ("swin", "swin_t", ["features"], [f"features.{i}" for i in range(8)]),
    ("vit", "vit_b_16", ["encoder", "encoder.layers"], ["encoder.layers.encoder_layer_0"]),  # one fold of 12
    ("resnet", "resnet50", [], ["layer1", "layer2", "layer3", "layer4"]),
])
def test_the_page_opens_where_the_stages_are(name, variant, opened, shown):
    d = data(name, variant)
    assert first_screen(d) == (opened, shown)


def test_depth_opens_the_page_as_the_picture_at_that_depth():
    # before, --depth 2 changed nothing on densenet121's first screen
    d = data("densenet", "densenet121", 2)
    items = d["items"]
    assert {items[i]["id"] for i in d["open"]} == {it["id"] for it in items if it["k"] == "box"}
    assert "features.denseblock1" in {items[i]["id"] for i in d["open"]}
    assert all(it["k"] == "leaf" for it in items if ".denselayer" in it["id"] and it["id"].count(".") == 2)


def test_runs_fold_on_the_page_with_a_count_and_open(swin_fixed):  # noqa: F811
    d = data("densenet", "densenet121")
    items = d["items"]
    index = {it["id"]: i for i, it in enumerate(items)}
    head = items[index["features.denseblock3.denselayer1"]]
    assert head["fold"]["n"] == 24 and head["fold"]["name"] == "denselayer1 … denselayer24"
    assert head["fold"]["call"] == "DenseLayer(growth_rate=32)"
    assert [items[i]["id"] for i in head["run"]] == [f"features.denseblock3.denselayer{k}" for k in range(1, 25)]
    conv = items[index["features.denseblock3.denselayer7.conv2"]]  # inside a later member: its counterpart
    assert items[conv["f"]] is head and items[conv["tw"]]["id"] == "features.denseblock3.denselayer1.conv2"
    # "expand all" with the runs folded: the boxes not inside a later member (before: all 66, every dense layer)
    boxes = [it for it in items if it["k"] == "box"]
    assert len(boxes) == 66 and sum(1 for it in boxes if "f" not in it) == 12
    swin = drawhtml.page_data(swin_fixed.graph("swin_v2_t"), None, signatures=Signatures.of_spec(swin_fixed))["items"]
    fold = next(it for it in swin if it.get("fold"))
    assert fold["id"] == "features.5.0" and fold["fold"]["ranges"] == [
        "shift_size = 0 or 4", "stochastic_depth_prob = 0.0727 … 0.164"]


def test_block_labels_on_the_page_name_their_arguments():
    items = data("efficientnet", "efficientnet_b0")["items"]
    call = next(it["call"] for it in items if it["id"] == "features.3.0")
    assert call == "MBConv(expand_ratio=6, kernel=5, stride=2, out_channels=40, p=0.0375)"


@pytest.mark.slow  # every shipped variant's page data
def test_the_first_screen_of_every_shipped_variant_shows_its_stages():
    for variant, graph, signatures in shipped_variants():
        d = drawhtml.page_data(graph, signatures=signatures)
        boxes = sum(1 for it in d["items"] if it["k"] in ("box", "leaf"))
        # two or more stages, or a network of fewer boxes than that (alexnet_paper has none)
        assert stages(d) >= min(2, boxes), (variant, first_screen(d))


# ------------------------------------------------------------------ in a browser


def shown_ids(driver, kind="node"):
    return driver.execute_script(f"return [...document.querySelectorAll('#diagram .{kind}')].map(e => e.dataset.id)")


def write(tmp_path, name, variant):
    out = tmp_path / f"{variant}.html"
    out.write_bytes(draw.draw(spec(name), variant, "html"))
    return out


@pytest.mark.slow
def test_the_page_opens_at_stages_folds_finds_and_exports(browser, tmp_path):  # noqa: F811
    open_page(browser, write(tmp_path, "densenet", "densenet121"))
    assert shown_ids(browser, "box") == ["features"]
    assert "features.denseblock3" in shown_ids(browser)
    browser.find_element("id", "expand-all").click()
    assert len(shown_ids(browser, "box")) == 12  # 66 boxes and 429 nodes before
    height = int(browser.execute_script("return document.getElementById('diagram').getAttribute('height')"))
    assert height < 6000  # 31,838 px before
    # the count unfolds its run, and folds it again
    switch = browser.execute_script("return document.querySelector('#diagram [data-run]')")
    browser.execute_script("arguments[0].dispatchEvent(new MouseEvent('click', {bubbles: true}))", switch)
    assert "features.denseblock1.denselayer6" in shown_ids(browser, "box")
    # search by block type and by op label
    search = browser.find_element("id", "search")
    search.send_keys("Transition")
    hits = browser.execute_script("return [...document.querySelectorAll('#results li')].map(e => e.textContent)")
    assert len(hits) > 3 and all("Transition(" in h for h in hits[:3])  # the blocks first, then paths
    search.clear()
    search.send_keys("conv 1x1")
    assert browser.execute_script("return document.querySelectorAll('#results li').length") > 0
    # the current view as SVG: standalone, styled
    svg = browser.execute_script("return window.archcExportSvg()")
    assert svg.startswith("<?xml") and 'xmlns="http://www.w3.org/2000/svg"' in svg and "<style>" in svg
    assert "features.denseblock1" in svg
    assert browser.get_log("browser") == []


@pytest.mark.slow
def test_keys_move_open_and_close(browser, tmp_path):  # noqa: F811
    from selenium.webdriver.common.keys import Keys

    open_page(browser, write(tmp_path, "resnet", "resnet18"))
    body = browser.find_element("tag name", "body")
    focused = lambda: browser.execute_script(  # noqa: E731
        "return [...document.querySelectorAll('#diagram .hit')].map(e => e.dataset.id)")
    body.send_keys(Keys.ARROW_DOWN)
    assert focused() == ["input"]
    for _ in range(5):
        body.send_keys(Keys.ARROW_DOWN)
    assert focused() == ["layer1"]
    body.send_keys(Keys.ENTER)  # opens layer1, the focus on its first block
    assert "layer1" in shown_ids(browser, "box") and focused() == ["layer1.0"]
    body.send_keys(Keys.ESCAPE)
    assert "layer1" not in shown_ids(browser, "box") and focused() == ["layer1"]


@pytest.mark.slow
def test_edge_labels_never_cover_a_box_title(browser, tmp_path):  # noqa: F811
    for name, variant in [("densenet", "densenet121"), ("swin", "swin_t"), ("googlenet", "googlenet")]:
        open_page(browser, write(tmp_path, name, variant))
        browser.find_element("id", "expand-all").click()
        overlaps = browser.execute_script("""
            const heads = [...document.querySelectorAll('#diagram .boxhead text')].map(e => e.getBBox());
            const out = [];
            for (const e of document.querySelectorAll('#diagram .elabel')) {
              const b = e.getBBox();
              for (const h of heads) if (b.x < h.x + h.width && b.x + b.width > h.x && b.y < h.y + h.height &&
                                         b.y + b.height > h.y) out.push(e.textContent);
            }
            return out;""")
        assert overlaps == [], (variant, overlaps)


def test_the_page_data_is_json_with_the_folds(tmp_path, swin_fixed):  # noqa: F811
    text = draw.draw(swin_fixed, "swin_v2_t", "html").decode()
    d = json.loads(data_of(text)[0])
    assert any(it.get("fold", {}).get("n") == 6 for it in d["items"])
