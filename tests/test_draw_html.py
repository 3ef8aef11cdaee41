"""archc draw -o net.html: the interactive page, its data, its escaping, and the page itself in a real browser.

The browser tests drive Debian's chromium with chromedriver through selenium; without them they skip
(``.ci/run`` installs both where apt works).
"""

import html
import json
import re
import shutil
import subprocess
import sys

import pytest
from archtest import SPECS, spec
from test_draw import chain

import archc
from archc.backends.diagram import draw
from archc.backends.diagram import page as drawhtml
from archc.backends.diagram.dot import diagram_title
from archc.cli import main
from archc.lang import files

DATA_OPEN = '<script type="application/json" id="archc-data">'
CHROMIUM = next(filter(None, map(shutil.which, ("chromium", "chromium-browser", "google-chrome"))), None)
CHROMEDRIVER = shutil.which("chromedriver")
EVIL = '''# Evil </script><script>document.title = "pwned"</script> & <!-- -->

# A block </script><img src=x onerror="document.title='pwned'"> & friends
block Evil(tag = "none") {
    "c</script><b>1" = conv(8, 3, padding = 1)
    relu
}

# The network </script><script>document.title = "pwned"</script>
network Net() {
    input 3 x 8 x 8
    "e</script><i>x" = Evil("</script><script>document.title = 'pwned'</script>")
    flatten
    fc = linear(10)
}

variant net = Net()
'''


def data_of(page: str) -> tuple[str, str]:
    """(the embedded JSON text, the page without it)."""
    start = page.index(DATA_OPEN) + len(DATA_OPEN)
    end = page.index("</script>", start)
    return page[start:end], page[:start] + page[end:]


def top_level(graph) -> list[str]:
    """What the page shows first: the network's own ops and its top-level blocks and seqs, closed."""
    seen: list[str] = []
    for op in graph.ops():
        key = op.scope[0] if op.scope else op.id
        if key not in seen:
            seen.append(key)
    return seen + ["out:output"] + [f"out:{name}" for name in graph.sides]


# ------------------------------------------------------------------ the page, without a browser


@pytest.mark.parametrize(("name", "variant"), [("googlenet", "googlenet"), ("densenet", "densenet121")])
def test_the_page_is_self_contained(name, variant):
    page = draw.draw(spec(name), variant, "html").decode("utf-8")
    data, rest = data_of(page)
    assert rest.startswith("<!DOCTYPE html>\n")
    for outside in ("http://", "https://", "src=", "href=", "@import", "<link", "//cdn", "@font-face"):
        assert outside not in rest, outside
    assert re.findall(r"url\((.)", rest) == ["#"] * len(re.findall(r"url\(", rest))  # only the arrow markers
    assert rest.count("<script") == 2 and "<script src" not in rest
    assert json.loads(data)["title"] == diagram_title(spec(name).graph(variant), None)


def test_the_data_is_the_graph():
    graph = spec("googlenet").graph("googlenet")
    data = drawhtml.page_data(graph)
    items = data["items"]
    ops = [it for it in items if it["k"] == "op"]
    assert [it["id"] for it in ops] == [op.id for op in graph.ops()]  # every op, in the graph's order
    boxes = [it["id"] for it in items if it["k"] == "box"]
    assert sorted(boxes) == sorted(graph.scopes)
    chains = {s: op.scope[:op.scope.index(s)] for op in graph.ops() for s in op.scope}
    for it in items:  # each item sits in the innermost block or seq around it
        parent = items[it["p"]]["id"] if it["p"] >= 0 else None
        around = graph.node(it["id"]).scope if it["k"] == "op" else chains.get(it["id"], ())
        assert parent == (around[-1] if around else None), it["id"]
    index = {it["id"]: i for i, it in enumerate(items)}
    edges = {(items[a]["id"], items[b]["id"]) for a, b, *_ in data["edges"]}
    assert {(u, v) for u, v in graph.g.edges} | {(graph.output, "out:output"), (graph.sides["aux1"], "out:aux1"),
                                                  (graph.sides["aux2"], "out:aux2")} == edges
    conv = items[index["conv1.conv"]]
    assert conv["label"] == "conv 7x7/2, 64" and conv["shape"] == [64, 112, 112] and conv["params"] == 9408
    assert "kernel_size=7" in conv["args"] and "bias=false" in conv["args"] and conv["ins"] == [[3, 224, 224]]
    concat = items[index["inception3a.concat#1"]]
    assert concat["sum"] == "64 + 128 + 2×32 = 256"
    assert data["open"] == [] and data["title"].startswith("googlenet (GoogLeNet)")


def test_depth_makes_blocks_leaves_and_the_data_is_bounded():
    graph = spec("densenet").graph("densenet121")
    items = drawhtml.page_data(graph, depth=1)["items"]
    leaves = [it["id"] for it in items if it["k"] == "leaf"]
    assert leaves == [p for p, s in graph.scopes.items() if s.kind == "block" and p.count(".") == 1]
    assert not any(it["k"] == "op" and ".denseblock" in it["id"] for it in items)
    with pytest.raises(draw.DrawError, match=r"more than 25,000 ops and boxes \(page.MAX_ITEMS\)") as raised:
        drawhtml.page(chain(30_000))
    assert "--depth N" in str(raised.value)


def test_one_block_opens_on_its_own():
    graph, path = draw.block_instance(spec("googlenet"), "inception3a")
    data = drawhtml.page_data(graph, block=path)
    items = data["items"]
    assert [items[i]["id"] for i in data["open"]] == ["inception3a"]
    ends = [it["id"] for it in items if it["k"] == "end"]
    assert ends == ["in:maxpool2", "out:inception3a.concat#1"]


def test_spec_text_cannot_break_out_of_the_page(tmp_path):
    (tmp_path / "evil.arch").write_text(EVIL)
    page = tmp_path / "evil.html"
    assert main(["draw", str(tmp_path / "evil.arch"), "-o", str(page)]) == 0
    text = page.read_text()
    data, rest = data_of(text)
    assert not set("<>&") & set(data)  # \u003c, \u003e, \u0026 instead
    decoded = json.loads(data)
    assert "</script>" in decoded["doc"] and any(it.get("id") == "e</script><i>x" for it in decoded["items"])
    assert text.lower().count("</script") == 2 and text.count("<script") == 2  # only the page's own
    assert "pwned" not in rest and "<img" not in rest
    assert drawhtml.script_json({"a": "</script><!--&"}) == '{"a":"\\u003c/script\\u003e\\u003c!--\\u0026"}'


def test_the_page_is_written_marked_and_deterministic(tmp_path):
    out = tmp_path / "g.html"
    code = ("import sys\nfrom archc.cli import main\n"
            f"assert main(['draw', {str(SPECS / 'googlenet.arch')!r}, '-o', {str(out)!r}]) == 0\n"
            "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch imported'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PYTHONHASHSEED": "777", "PATH": ""})  # another hash seed than this run's
    assert result.returncode == 0, result.stderr
    expected = draw.draw(spec("googlenet"), "googlenet", "html")
    assert out.read_bytes() == files.marked(expected, "html")
    assert out.read_text().startswith("<!DOCTYPE html>\n<!-- Generated by archc -->\n")
    assert files.is_generated(out)  # so archc may overwrite it
    assert main(["draw", str(SPECS / "googlenet.arch"), "--depth", "1", "-o", str(out)]) == 0
    assert draw.format_of("net.htm") == "html"


def test_jupyter_shows_the_page():
    s = spec("googlenet")
    shown = s._repr_html_()
    match = re.fullmatch(r'<iframe srcdoc="([^"]*)" sandbox="allow-scripts" style="[^"]*"></iframe>', shown)
    assert match, shown[:200]
    graph = s.graph("googlenet")
    assert html.unescape(match.group(1)) == drawhtml.page(graph, docs=drawhtml.spec_docs(s, "googlenet"))
    assert graph._repr_html_().startswith('<iframe srcdoc="&lt;!DOCTYPE html&gt;')
    assert spec("common")._repr_html_() is None  # a library of blocks: nothing to draw
    assert drawhtml.notebook_html(chain(30_000)).startswith("<pre>the page of chain would hold more than")


# ------------------------------------------------------------------ in a browser


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[test]'")
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("no headless browser: install Chromium and ChromeDriver (Debian: apt-get install chromium "
                    "chromium-driver) to run the page in one")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000", f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    yield driver
    driver.quit()


def open_page(driver, path):
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(path.as_uri())
    WebDriverWait(driver, 20).until(lambda d: d.execute_script("return document.body.dataset.ready") == "true")


def shown(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('#diagram .node')].map(e => e.dataset.id)")


def boxes(driver) -> list[str]:
    return driver.execute_script("return [...document.querySelectorAll('#diagram .box')].map(e => e.dataset.id)")


def node(driver, name: str):
    found = driver.execute_script("return [...document.querySelectorAll('#diagram .node')]"
                                  ".find(e => e.dataset.id === arguments[0]) || null", name)
    assert found is not None, f"{name} is not shown"
    return found


def header(driver, name: str):
    return driver.execute_script("return [...document.querySelectorAll('#diagram .box')]"
                                 ".find(e => e.dataset.id === arguments[0]).querySelector('.boxhead')", name)


def click(driver, element) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'center'})", element)
    element.click()


def hover(driver, element) -> str:
    from selenium.webdriver.common.action_chains import ActionChains

    driver.execute_script("arguments[0].scrollIntoView({block: 'center', inline: 'center'})", element)
    ActionChains(driver).move_to_element(element).perform()
    return driver.find_element("id", "tip").text


def edges(driver) -> list[tuple[str, str, list]]:
    return driver.execute_script("return [...document.querySelectorAll('#diagram path.edge')]"
                                 ".map(e => [e.dataset.from, e.dataset.to, JSON.parse(e.dataset.shapes)])")


@pytest.mark.slow
def test_resnet_page_opens_blocks_shows_what_they_hold_and_finds_layers(browser, tmp_path):
    graph = spec("resnet").graph("resnet50")
    page = tmp_path / "resnet50.html"
    assert main(["draw", str(SPECS / "resnet.arch"), "--variant", "resnet50", "-o", str(page)]) == 0
    open_page(browser, page)
    assert shown(browser) == top_level(graph) and boxes(browser) == []  # the top level, every block closed
    assert "13 nodes shown" in browser.find_element("id", "status").text
    # a seq opens in place: its blocks, closed, the five alike ones folded; the count unfolds them
    click(browser, node(browser, "layer3"))
    assert boxes(browser) == ["layer3"]
    assert [n for n in shown(browser) if n.startswith("layer3")] == ["layer3.0", "layer3.1"]
    assert "layer3.1 … layer3.5" in node(browser, "layer3.1").text
    unfold(browser)
    assert [n for n in shown(browser) if n.startswith("layer3")] == [f"layer3.{i}" for i in range(6)]
    click(browser, node(browser, "layer3.2"))
    assert boxes(browser) == ["layer3", "layer3.2"]
    assert [n for n in shown(browser) if n.startswith("layer3.")] == [
        "layer3.0", "layer3.1", *(op.id for op in graph.ops() if "layer3.2" in op.scope), "layer3.3", "layer3.4",
        "layer3.5"]
    conv = graph.node("layer3.2.conv2")
    tip = hover(browser, node(browser, "layer3.2.conv2"))
    for line in ("layer3.2.conv2", "conv 3x3, 256", "op: conv", "kernel_size=3", "input: 256×14×14",
                 "output: 256×14×14", f"params: {conv.params:,}", f"MACs: {conv.macs:,}"):
        assert line in tip, (line, tip)
    tip = hover(browser, node(browser, "layer3.1"))
    assert "block Bottleneck: Bottleneck(planes=256)" in tip and "output: 1024×14×14" in tip  # named, defaults out
    assert "click to open" in tip
    # its header closes it again
    click(browser, header(browser, "layer3"))
    assert boxes(browser) == [] and shown(browser) == top_level(graph)
    # search: the layer is shown, its blocks opened around it, and scrolled to
    search = browser.find_element("id", "search")
    search.send_keys("layer4.1.conv")
    assert browser.find_element("css selector", "#results li").text.startswith("layer4.1.conv1")
    search.clear()
    search.send_keys("layer4.1.conv3\n")
    assert boxes(browser) == ["layer4", "layer4.1"]
    found = node(browser, "layer4.1.conv3")
    assert "hit" in found.get_attribute("class")
    inside = browser.execute_script("const r = arguments[0].getBoundingClientRect();"
                                    "return r.top >= 0 && r.bottom <= innerHeight && r.left >= 0 && r.right <= innerWidth",
                                    found)
    assert inside
    browser.find_element("id", "expand-all").click()
    unfold(browser)
    assert set(shown(browser)) == {op.id for op in graph.ops()} | {"out:output"}
    browser.find_element("id", "collapse-all").click()
    assert shown(browser) == top_level(graph)
    click(browser, node(browser, "layer1"))
    click(browser, node(browser, "layer1.0"))
    browser.save_screenshot(str(tmp_path / "resnet50_layer1.png"))
    assert (tmp_path / "resnet50_layer1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def unfold(driver) -> None:
    """Unfolds every folded run shown, and the runs that shows, until none is left."""
    while driver.execute_script("const s = [...document.querySelectorAll('#diagram [data-run]')]"
                                ".find(e => e.textContent.startsWith('\u00d7'));"
                                "if (s) s.dispatchEvent(new MouseEvent('click', {bubbles: true})); return !!s"):
        pass


def assert_concatenations_add_up(driver, graph) -> int:
    """Every concatenation shown receives edges whose channels add up to its output; returns how many."""
    into: dict[str, list] = {}
    for _, to, shapes in edges(driver):
        into.setdefault(to, []).extend(shapes)
    concats = [op for op in graph.ops() if op.op == "concat" and op.id in set(shown(driver))]
    for op in concats:
        assert sum(s[0] for s in into[op.id]) == op.shape[0], (op.id, into[op.id], op.shape)
        assert len(into[op.id]) == len(op.in_shapes)  # one tensor per input, the block's and every layer's
    return len(concats)


@pytest.mark.slow
def test_a_dense_block_unfolds_to_its_dense_connectivity(browser, tmp_path):
    graph = spec("densenet").graph("densenet121")
    page = tmp_path / "densenet121.html"
    page.write_bytes(draw.draw(spec("densenet"), "densenet121", "html"))
    open_page(browser, page)
    assert boxes(browser) == ["features"]  # the page opens where the dense blocks are
    # closed, the block receives its input once, though seven of its ops read it
    assert [e for e in edges(browser) if e[1] == "features.denseblock1"] == [
        ["features.pool0", "features.denseblock1", [[64, 56, 56]]]]
    click(browser, node(browser, "features.denseblock1"))
    folded = [n for n in shown(browser) if n.startswith("features.denseblock1.")]
    assert folded == ["features.denseblock1.denselayer1", "features.denseblock1.concat#6"]
    # folded, the six layers' new features go to the last concatenation together
    assert sorted(len(e[2]) for e in edges(browser) if e[1] == "features.denseblock1.concat#6") == [1, 6]
    unfold(browser)
    block = [n for n in shown(browser) if n.startswith("features.denseblock1.")]
    assert block == [f"features.denseblock1.{x}" for k in range(1, 7) for x in (f"denselayer{k}", f"concat#{k}")]
    assert assert_concatenations_add_up(browser, graph) == 6
    layer3 = [(a, b) for a, b, _ in edges(browser) if a == "features.denseblock1.denselayer3"]
    assert [b for _, b in layer3] == [f"features.denseblock1.concat#{k}" for k in range(3, 7)]  # every later one
    assert "64 + 3×32 = 160 channels" in node(browser, "features.denseblock1.concat#3").text
    assert "channels: 64 + 3×32 = 160" in hover(browser, node(browser, "features.denseblock1.concat#3"))
    click(browser, node(browser, "features.denseblock1.denselayer2"))
    conv2 = sorted(b for a, b, _ in edges(browser) if a == "features.denseblock1.denselayer2.conv2")
    assert conv2 == [f"features.denseblock1.concat#{k}" for k in range(2, 7)]
    assert assert_concatenations_add_up(browser, graph) == 6
    browser.execute_script("arguments[0].scrollIntoView({block: 'start'})", node(browser, "features.pool0"))
    browser.save_screenshot(str(tmp_path / "densenet121_denseblock1.png"))
    browser.find_element("id", "expand-all").click()
    unfold(browser)
    assert assert_concatenations_add_up(browser, graph) == 6 + 12 + 24 + 16


@pytest.mark.slow
def test_spec_text_stays_text_in_the_browser_and_in_jupyter(browser, tmp_path):
    (tmp_path / "evil.arch").write_text(EVIL)
    page = tmp_path / "evil.html"
    assert main(["draw", str(tmp_path / "evil.arch"), "-o", str(page)]) == 0
    open_page(browser, page)
    title = diagram_title(archc.load(tmp_path / "evil.arch").graph(), None)
    assert browser.title == title and "pwned" not in title
    count = browser.execute_script("return ['script', 'img', 'b', 'i'].map(t => document.getElementsByTagName(t).length)")
    assert count == [2, 0, 0, 0]
    assert "</script>" in browser.find_element("id", "doc").text
    tip = hover(browser, node(browser, "e</script><i>x"))
    assert "block Evil: Evil(tag=\"</script><script>document.title = 'pwned'</script>\")" in tip
    assert "A block </script><img src=x" in tip  # the block's comment
    search = browser.find_element("id", "search")
    search.send_keys("c</script><b>1\n")
    assert node(browser, "e</script><i>x.c</script><b>1").text.startswith("conv 3x3, 8")
    assert browser.title == title
    # inline in a notebook: the same page in an iframe
    holder = tmp_path / "notebook.html"
    holder.write_text(f"<!DOCTYPE html><html><body>{spec('googlenet')._repr_html_()}</body></html>")
    browser.get(holder.as_uri())
    browser.switch_to.frame(browser.find_element("tag name", "iframe"))
    try:
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(browser, 20).until(lambda d: d.execute_script("return document.body.dataset.ready") == "true")
        assert shown(browser) == top_level(spec("googlenet").graph("googlenet"))
    finally:
        browser.switch_to.default_content()
