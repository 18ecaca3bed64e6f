"""Test the built site in a real browser: ``python book/check.py`` (what ``make book-check`` runs after ``make book``).

Serves _build/html on 127.0.0.1 (a free port) and drives headless Chromium (Debian's chromium + chromedriver;
selenium never downloads a browser or driver here: the driver path is given) over every page of the site:

- no console error (the browser log), no failed request (Network.loadingFailed, HTTP status >= 400) and no
  request to any host but 127.0.0.1 (data: URLs are fine), from the performance log;
- every <img> loaded (naturalWidth > 0); every math element typeset by MathJax, none of them a TeX error or an
  undefined macro, no raw "$$" in the page text and no stray "$" in its prose (a delimiter MyST did not pair);
- every internal link resolves: its file exists in the site and so does its #anchor; previous/next follow the
  course order; every notebook page links its .ipynb for download;
- the search page finds "attention" on the attention chapter/notebook and "Shapley" on the SHAP ones;
- every course page opened from disk (file://, no server): images load, math is typeset, no request leaves the
  machine and the console stays clean;
- screenshots of the course map, the attention heatmaps and a coloured token attribution go to _build/screenshots/.

Prints one row per page and exits non-zero, naming every failure, when anything is wrong.
``--self-test`` plants each kind of fault in a copy of the site and fails unless every one is reported
(``make book-check`` runs it first, so a check that can no longer fail is caught).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

ROOT = Path(__file__).resolve().parent.parent
HTML = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REPO_DIRS = ("bigtut", "tests", "benchmarks", "checkpoints")  # plain repository files copied into the site
SEARCHES = {  # query -> pages of which at least one must be among the results
    "attention": ("chapters/02_attention.html", "notebooks/02_attention.html"),
    "Shapley": ("chapters/07_shap.html", "notebooks/07_shap.html"),
}
PAGE_TIMEOUT_S = 30

# Runs in the page once it has loaded: waits for MathJax (when the page has it) to finish typesetting.
WAIT_FOR_MATH_JS = """
const done = arguments[arguments.length - 1];
const ready = () => (window.MathJax && MathJax.startup && MathJax.startup.promise) || Promise.resolve();
const start = Date.now();
(function poll() {
  if (document.readyState === "complete") {
    ready().then(() => done(true), (e) => done("MathJax failed: " + e));
  } else if (Date.now() - start > 20000) { done("page never finished loading"); }
  else { setTimeout(poll, 50); }
})();
"""

# Makes every image load now (lazy ones included) and reports those that did not.
IMAGES_JS = """
const done = arguments[arguments.length - 1];
const images = Array.from(document.images);
images.forEach((img) => { img.loading = "eager"; });
Promise.all(images.map((img) => img.decode().catch(() => null))).then(() => done({
  total: images.length,
  broken: images.filter((img) => !(img.complete && img.naturalWidth > 0)).map((img) => img.getAttribute("src")),
}));
"""

PAGE_FACTS_JS = """
const math = Array.from(document.querySelectorAll("span.math, div.math"));
const main = document.querySelector("main") || document.body;
const walker = document.createTreeWalker(main, NodeFilter.SHOW_TEXT);
const strayDollars = [];  // "$" in prose: math delimiters MyST did not pair (code and outputs may hold "$")
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const skip = node.parentElement.closest("pre, code, mjx-container, script, style, .output");
  if (node.textContent.includes("$") && !skip) {
    strayDollars.push(node.textContent.trim().slice(0, 80));
  }
}
return {
  math: math.length,
  untypeset: math.filter((e) => !e.querySelector("mjx-container")).map((e) => e.textContent.slice(0, 80)),
  mathErrors: (window.MathJax?.startup?.document?.math ? Array.from(MathJax.startup.document.math) : [])
    .filter((item) => item.typesetRoot?.querySelector("mjx-merror, mjx-mtext[style*='color: red']"))
    .map((item) => item.math.slice(0, 80)).slice(0, 3),
  rawDollars: document.body.innerText.includes("$$"),
  strayDollars: strayDollars.slice(0, 3),
  links: Array.from(document.querySelectorAll("a[href]")).map((a) => a.getAttribute("href")),
  previous: document.querySelector("a.left-prev")?.getAttribute("href") ?? null,
  next: document.querySelector("a.right-next")?.getAttribute("href") ?? null,
  downloads: Array.from(document.querySelectorAll("a[href$='.ipynb']")).map((a) => a.getAttribute("href")),
};
"""


@dataclass
class PageResult:
    """What one page showed; ``problems`` empty means it passed."""

    name: str
    requests: int = 0
    images: str = "-"
    math: str = "-"
    links: int = 0
    problems: list[str] = field(default_factory=list)


class _Anchors(HTMLParser):
    """Collects every id= and name= of an HTML file (the targets a #anchor may point at)."""

    def __init__(self) -> None:
        super().__init__()
        self.anchors: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.anchors.add(value)


@functools.cache
def anchors_of(path: Path) -> frozenset[str]:
    parser = _Anchors()
    parser.feed(path.read_text(encoding="utf-8", errors="replace"))
    return frozenset(parser.anchors)


def serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    """Serve ``folder`` on 127.0.0.1 at a free port, from a daemon thread; returns the server and its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep the table readable
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def start_browser(profile: Path):
    """Headless Chromium with console and network logs on; the driver path is given, so nothing is downloaded."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        raise SystemExit(
            f"book-check: {', '.join(missing)} not found; install Debian's browser and driver with "
            "`apt-get update && apt-get install -y chromium chromium-driver` (`make book-check` does this as root)"
        )
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium-manager must never try the network
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", "--window-size=1400,1000", "--hide-scrollbars", f"--user-data-dir={profile}",
    ):  # fmt: skip
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    driver.set_script_timeout(PAGE_TIMEOUT_S)
    return driver


def network_problems(driver, base: str) -> tuple[int, list[str]]:
    """Requests since the last call: how many, and those that left 127.0.0.1, failed or got status >= 400."""
    problems, requests = [], {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message["method"], message.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            requests[params["requestId"]] = url
            scheme, host = urlsplit(url).scheme, urlsplit(url).hostname
            # data:/blob:/about: never touch the network; chrome:// is the browser's own start page at start-up
            if scheme not in ("data", "blob", "about", "chrome") and not (scheme == "file" or host == "127.0.0.1"):
                problems.append(f"request leaves 127.0.0.1: {url}")
        elif method == "Network.responseReceived" and params["response"]["status"] >= 400:
            problems.append(f"HTTP {params['response']['status']}: {params['response']['url']}")
        elif method == "Network.loadingFailed":
            url = requests.get(params["requestId"], params["requestId"])
            problems.append(f"request failed ({params.get('errorText', '?')}): {url}")
    return len(requests), [p.replace(base, "/") for p in problems]


def console_errors(driver) -> list[str]:
    return [f"console {e['level']}: {e['message'][:300]}" for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def check_links(links: list[str], page_url: str, base: str) -> tuple[int, list[str]]:
    """Every link inside the site must name a file that exists there, and an #anchor that exists in it."""
    problems, checked = [], 0
    for href in links:
        url = urljoin(page_url, href)
        if not url.startswith(base):
            continue  # a web link (papers, libraries); it loads nothing, so it is not a request of the page
        checked += 1
        parts = urlsplit(url)
        target = HTML / unquote(parts.path[len(urlsplit(base).path) :])
        if parts.path.endswith("/"):
            problems.append(f"link to a folder (opens nothing from disk): {href}")
            continue
        if not target.is_file():
            problems.append(f"broken link: {href} ({target.relative_to(HTML)} is not in the site)")
            continue
        if parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in anchors_of(target):
            problems.append(f"broken anchor: {href} (no id {parts.fragment!r} in {target.relative_to(HTML)})")
    return checked, problems


def load(driver, url: str) -> list[str]:
    driver.get(url)
    state = driver.execute_async_script(WAIT_FOR_MATH_JS)
    return [] if state is True else [str(state)]


def course_order() -> list[str]:
    """index.html, then every chapter and notebook page in the order book/build.py gave the sidebar."""
    sys.path.insert(0, str(ROOT / "book"))
    from build import course_pages

    return ["index.html"] + [page.html for page in course_pages(ROOT)]


def load_and_count(driver, url: str, result: PageResult) -> dict:
    """Open ``url``; record in ``result`` its loaded images and typeset math, and any that are not; return the
    page's facts (PAGE_FACTS_JS) for the checks that only the served pages get."""
    result.problems += load(driver, url)
    images = driver.execute_async_script(IMAGES_JS)
    result.images = f"{images['total'] - len(images['broken'])}/{images['total']}"
    result.problems += [f"image not loaded: {src}" for src in images["broken"]]
    facts = driver.execute_script(PAGE_FACTS_JS)
    if facts["math"]:
        result.math = f"{facts['math'] - len(facts['untypeset'])}/{facts['math']}"
    result.problems += [f"math not typeset: {text!r}" for text in facts["untypeset"][:3]]
    return facts


def check_page(driver, base: str, relative: str, order: list[str]) -> PageResult:
    result = PageResult(relative)
    url = base + relative
    facts = load_and_count(driver, url, result)
    result.problems += [
        f"MathJax error (or undefined macro, in red) in formula: {text}" for text in facts["mathErrors"]
    ]
    if facts["rawDollars"]:
        result.problems.append("raw '$$' left in the page text (math the parser did not recognise)")
    result.problems += [f"stray '$' in the text (unpaired math delimiter?): {text!r}" for text in facts["strayDollars"]]
    if relative.startswith("notebooks/") and not any(
        h.endswith(Path(relative).stem + ".ipynb") for h in facts["downloads"]
    ):
        result.problems.append("no download link to the page's .ipynb")
    if relative in order:  # previous/next follow the course: chapter NN, notebook NN, chapter NN+1, ...
        i = order.index(relative)
        for key, expected in (("previous", order[i - 1] if i else None), ("next", (order + [None])[i + 1])):
            found = facts[key] and os.path.normpath(os.path.join(os.path.dirname(relative), facts[key]))
            if found != expected:
                result.problems.append(f"{key} link goes to {found}, expected {expected}")
    result.links, link_problems = check_links(facts["links"], url, base)
    result.problems += link_problems
    result.requests, net = network_problems(driver, base)
    result.problems += net + console_errors(driver)
    return result


def check_search(driver, base: str, query: str, expected: tuple[str, ...]) -> PageResult:
    result = PageResult(f"search.html?q={query}")
    result.problems += load(driver, f"{base}search.html?q={query}")
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    hits: list[str] = []
    while time.monotonic() < deadline:
        summary = driver.execute_script(
            "const s = document.querySelector('#search-results .search-summary');return s ? s.textContent : null;"
        )
        if summary:
            hits = driver.execute_script(
                "return Array.from(document.querySelectorAll('#search-results ul.search li a')).map((a) => a.href);"
            )
            break
        time.sleep(0.1)
    else:
        result.problems.append("the search never finished (no result summary)")
    pages = {urlsplit(h).path[len(urlsplit(base).path) :] for h in hits}
    result.links = len(pages)
    if not pages & set(expected):
        result.problems.append(f"{query!r} did not find {' or '.join(expected)} (found {sorted(pages)[:6]})")
    result.requests, net = network_problems(driver, base)
    result.problems += net + console_errors(driver)
    return result


# Screenshots: (file name, page, JavaScript returning the element to scroll into view, or null for the top).
SHOTS = (
    ("course_map.png", "index.html", "return null;"),
    (
        "attention_heatmaps.png",
        "notebooks/02_attention.html",
        "return Array.from(document.querySelectorAll('div.cell')).filter((c) => c.textContent.includes('plot_heatmap')"
        " && c.querySelector('img')).map((c) => c.querySelector('img'))[0] || null;",
    ),
    (
        "token_attributions.png",
        "notebooks/06_lime.html",
        "return document.querySelector('div.cell_output span[title][style*=\"background\"]');",
    ),
)


def screenshots(driver, base: str) -> list[str]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for name, page, find in SHOTS:
        load(driver, base + page)
        driver.execute_async_script(IMAGES_JS)
        element = driver.execute_script(find)
        if find != "return null;" and element is None:
            problems.append(f"screenshot {name}: nothing to show on {page} (heatmap / coloured tokens not found)")
        if element is not None:
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", element)
            time.sleep(0.3)
        driver.save_screenshot(str(SCREENSHOTS / name))
    driver.get_log("performance"), driver.get_log("browser")
    return problems


def check_from_disk(driver, pages: list[str]) -> list[PageResult]:
    """Every course page opened as a file, as a reader who double-clicks it would: images load, math is typeset,
    nothing is requested from outside and the console stays clean, with no server at all."""
    results = []
    for page in pages:
        result = PageResult(f"file://…/{page}")
        load_and_count(driver, (HTML / page).as_uri(), result)
        result.requests, net = network_problems(driver, "file://")
        result.problems += [p for p in net if "leaves" in p] + console_errors(driver)
        results.append(result)
    return results


# --self-test: faults planted in a copy of one page, each with the words its failure message must contain.
FAULTS = {
    '<script src="https://cdn.jsdelivr.net/npm/missing.js"></script>': "request leaves 127.0.0.1",
    '<img src="../_images/missing.png" alt="">': "image not loaded",
    '<a href="../chapters/missing.html">x</a>': "broken link",
    '<a href="../chapters/02_attention.html#missing-anchor">x</a>': "broken anchor",
    "<script>console.error('planted')</script>": "console SEVERE",
    '<span class="math">\\(\\frac{a}{\\)</span>': "math not typeset",
    '<span class="math">\\(\\undefinedmacro x\\)</span>': "MathJax error",
    "<p>an unpaired $ sign</p>": "stray '$'",
    "<pre>$$x$$</pre>": "raw '$$'",
}


def self_test(driver, base: str, folder: Path) -> list[str]:
    """Plant every fault of FAULTS (and a missing next link, download link, search hit) and expect each failure."""
    page = "notebooks/02_attention.html"
    text = (folder / page).read_text(encoding="utf-8")
    planted = text.replace("</main>", "".join(FAULTS) + "</main>", 1)
    planted = planted.replace('class="right-next"', 'class="next"').replace(".ipynb", ".txt")
    (folder / page).write_text(planted, encoding="utf-8")
    expected = list(FAULTS.values()) + ["next link goes to", "no download link"]
    found = check_page(driver, base, page, course_order()).problems
    found += check_search(driver, base, "zzqqxyzzy", ("notebooks/02_attention.html",)).problems
    missed = [words for words in expected + ["did not find"] if not any(words in p for p in found)]
    return [f"self-test: a planted fault went unnoticed (no problem containing {words!r})" for words in missed]


def site_pages() -> list[str]:
    pages = [p.relative_to(HTML).as_posix() for p in HTML.rglob("*.html")]
    return sorted(p for p in pages if p.split("/")[0] not in REPO_DIRS and not p.startswith("_"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", nargs="*", help="only these pages (paths under _build/html); default: all")
    parser.add_argument("--self-test", action="store_true", help="plant faults in a copy of the site; expect each")
    args = parser.parse_args(argv)
    if not (HTML / "index.html").is_file():
        raise SystemExit("book-check: _build/html/index.html is missing; build the site first with `make book`")
    if args.self_test:
        return run_self_test()
    pages = args.pages or site_pages()
    server, base = serve(HTML)
    profile = Path(tempfile.mkdtemp(prefix="bigtut-chromium-"))
    started = time.monotonic()
    driver = start_browser(profile)
    try:
        driver.get("about:blank")  # the logs hold the browser's own start-up; drop them, so each page has its own
        network_problems(driver, base), driver.get_log("browser")
        order = course_order()
        results = [check_page(driver, base, page, order) for page in pages]
        results += [check_search(driver, base, query, expected) for query, expected in SEARCHES.items()]
        shot_problems = screenshots(driver, base)
        results += check_from_disk(driver, order)  # every course page again, as files
    finally:
        driver.quit()
        server.shutdown()
        shutil.rmtree(profile, ignore_errors=True)

    width = max(len(r.name) for r in results)
    print(f"{'page':<{width}}  requests  images  math     links  result")
    for r in results:
        verdict = "ok" if not r.problems else f"FAIL ({len(r.problems)})"
        print(f"{r.name:<{width}}  {r.requests:>8}  {r.images:>6}  {r.math:>7}  {r.links:>5}  {verdict}")
    failures = [f"{r.name}: {p}" for r in results for p in r.problems] + shot_problems
    elapsed = time.monotonic() - started
    print(f"\n{len(results)} checks in {elapsed:.0f} s; screenshots in {SCREENSHOTS.relative_to(ROOT)}/")
    if failures:
        print(f"\nbook-check FAILED, {len(failures)} problem(s):", file=sys.stderr)
        for failure in failures:
            print(f"  - {failure}", file=sys.stderr)
        return 1
    print("book-check: every page passed")
    return 0


def run_self_test() -> int:
    global HTML
    scratch = Path(tempfile.mkdtemp(prefix="bigtut-book-selftest-"))
    site, HTML = HTML, scratch / "html"
    shutil.copytree(site, HTML)
    server, base = serve(HTML)
    driver = start_browser(scratch / "profile")
    try:
        driver.get("about:blank")
        network_problems(driver, base), driver.get_log("browser")
        failures = self_test(driver, base, HTML)
    finally:
        driver.quit()
        server.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)
        HTML = site
    for failure in failures:
        print(failure, file=sys.stderr)
    count = len(FAULTS) + 3
    print(f"book-check self-test: {count - len(failures)} of {count} planted faults caught")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
