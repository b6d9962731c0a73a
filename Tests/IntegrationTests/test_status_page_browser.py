"""The status page in a real browser: Debian's headless Chromium driven by
PyPI selenium, against otlpd on the SPEC's example pipeline (batch into a
file), while the OpenTelemetry Python SDK sends from several services with
its default settings (BatchSpanProcessor) in background threads:

- `checkout` over gRPC to the gRPC port, with the SDK initialised twice
  (two span processors on one provider, so each span goes out twice);
- `cart` over OTLP/HTTP pointed at the gRPC port (the wrong port);
- a service named like markup, which must show as text;
- `payments`, started while the page is open: its row must appear without a reload.

One request is refused (a body that is not protobuf). The test reads the
page's DOM (each row, rate, mark, refusal, the pipelines), sorts and filters
it, and saves a screenshot under .build/ (the README's picture comes from it).
"""
import re
import shutil
import threading
import time
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otlpd_harness import base_config, curl, wait_until

selenium = pytest.importorskip("selenium")
from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SCREENSHOT = REPO / ".build" / "status-page.png"
HOSTILE = '<img src=x onerror="document.title=\'owned\'">'


class App:
    """An app instrumented with the SDK as its docs show: a TracerProvider, a
    BatchSpanProcessor per exporter (defaults), spans made at a steady rate."""

    def __init__(self, service: str, exporters: list, spans_per_second: float):
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        for exporter in exporters:
            self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("shop")
        self.interval = 1 / spans_per_second
        self.stopped = threading.Event()
        self.made = 0
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopped.is_set():
            with self.tracer.start_as_current_span("GET /items"):
                self.made += 1
            # Flushed each second, so the page sees a steady rate (the default delay is 5 s).
            if self.made % max(1, int(1 / self.interval)) == 0:
                self.provider.force_flush()
            self.stopped.wait(self.interval)

    def stop(self):
        self.stopped.set()
        self.thread.join(timeout=10)
        self.provider.shutdown()


def chromium() -> webdriver.Chrome:
    if not shutil.which("chromium") or not shutil.which("chromedriver"):
        pytest.fail("chromium and chromium-driver are not installed (make deps installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1600,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(service=webdriver.ChromeService(executable_path=shutil.which("chromedriver")), options=options)


# The page redraws every second, replacing its rows: each read takes the
# whole DOM at one instant, in the browser, as plain data.
READ_PAGE = """
const rows = (selector) => Array.from(document.querySelectorAll(selector + " tbody tr")).map((tr) => ({
  data: Object.assign({}, tr.dataset),
  classes: tr.className,
  cells: Array.from(tr.children).map((td) => td.textContent),
  byClass: Object.fromEntries(Array.from(tr.children).filter((td) => td.className).map((td) => [td.className.split(" ").pop(), td.textContent])),
  marks: Array.from(tr.querySelectorAll(".mark, .hint")).map((e) => e.textContent),
  sparklines: tr.querySelectorAll("td.spark svg polyline").length,
}));
return {
  senders: rows("#senders"), refusals: rows("#refusals"), receivers: rows("#receivers"), pipelines: rows("#pipelines"),
  exporters: rows("#exporters"), feed: document.getElementById("feed").textContent, health: document.getElementById("health").textContent,
  images: document.querySelectorAll("img").length, title: document.title, loadedOnce: window.loadedOnce || null,
};
"""


def read_page(browser) -> dict:
    return browser.execute_script(READ_PAGE)


def senders(page) -> dict:
    return {row["data"]["service"]: row for row in page["senders"]}


def leading_number(text: str) -> float:
    """The number a cell starts with (a mark or hint may follow it)."""
    return float(re.match(r"[0-9.]+", text).group())


def settle(browser, predicate, timeout, what) -> dict:
    """The first reading of the page for which `predicate` holds."""
    found = {}

    def check():
        page = read_page(browser)
        if predicate(page):
            found["page"] = page
            return True
        return False
    wait_until(check, timeout, what, interval=0.2)
    return found["page"]


@pytest.fixture
def browser():
    driver = chromium()
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_in_a_browser(otlpd, tmp_path, browser):
    config = base_config(tmp_path, processors={"batch": {}})
    daemon = otlpd.start(config)
    page = daemon.telemetry_url("/")
    apps = [
        App("checkout", [GrpcSpanExporter(endpoint=f"http://127.0.0.1:{daemon.grpc_port}", insecure=True),
                         GrpcSpanExporter(endpoint=f"http://127.0.0.1:{daemon.grpc_port}", insecure=True)], 40),
        App("cart", [HttpSpanExporter(endpoint=daemon.http_url("/v1/traces", port=daemon.grpc_port))], 20),
        App(HOSTILE, [HttpSpanExporter(endpoint=daemon.http_url("/v1/traces"))], 5),
    ]
    try:
        refused = curl("-H", "Content-Type: application/x-protobuf", daemon.http_url(), data=b"\xff\xff not protobuf", workdir=tmp_path)
        assert refused.statuses == [400]
        browser.get(page)
        browser.execute_script("window.loadedOnce = 'yes'")
        rows = lambda page: senders(page)
        # Rates need a few seconds of steady sending; the twice-initialised SDK's duplicates come with its first exports.
        view = settle(browser, lambda p: {"checkout", "cart", HOSTILE} <= set(rows(p))
                      and leading_number(rows(p)["checkout"]["byClass"]["spans-rate"]) > 0
                      and leading_number(rows(p)["cart"]["byClass"]["spans-rate"]) > 0
                      and "SDK initialised twice?" in rows(p)["checkout"]["marks"], 25, "three senders with rates and the hint")
        assert view["feed"] == "live", "the page follows /events"

        checkout = rows(view)["checkout"]
        assert leading_number(checkout["byClass"]["duplicates"]) > 0
        assert checkout["byClass"]["protocol"] == f"grpc on :{daemon.grpc_port}", "right port, no mark"
        assert checkout["byClass"]["sdk"].startswith("python ")
        assert checkout["byClass"]["seen"].endswith("s ago") and checkout["sparklines"] == 1
        spans, rate = leading_number(checkout["cells"][5]), leading_number(checkout["byClass"]["spans-rate"])
        assert spans > 0 and 20 <= rate <= 200, f"checkout makes 40 spans/s, each sent twice: {rate}/s shown"

        cart = rows(view)["cart"]
        assert cart["marks"] == ["wrong port"], "OTLP/HTTP sent to the gRPC port"
        assert cart["byClass"]["protocol"] == f"http/protobuf on :{daemon.grpc_port}wrong port"

        # The markup-like name is text: no element was made from it, the script in it never ran.
        assert rows(view)[HOSTILE]["byClass"]["name"] == HOSTILE
        assert view["images"] == 0 and view["title"] == "otlpd"

        # The refusal, in the words of the log line.
        refusal = dict(zip(["time", "client", "service", "protocol", "status", "reason"], view["refusals"][0]["cells"]))
        assert refusal["status"] == "400" and refusal["protocol"] == "http" and refusal["client"].startswith("127.0.0.1:"), refusal
        assert "not a valid ExportTraceServiceRequest" in refusal["reason"], refusal
        logged = daemon.logs_matching("request refused")
        assert logged and logged[0].fields["reason"] == refusal["reason"]

        # Pipelines: both listeners with their open connections, batch in every pipeline, the file exporter's rate.
        listeners = {r["cells"][2]: r["cells"] for r in view["receivers"]}
        assert set(listeners) == {"OTLP/gRPC", "OTLP/HTTP"}
        assert listeners["OTLP/gRPC"][1] == f"127.0.0.1:{daemon.grpc_port}" and listeners["OTLP/gRPC"][3] == "off"
        assert int(listeners["OTLP/gRPC"][5]) >= 2, "checkout's two exporters and cart keep connections to the gRPC port"
        pipelines = {r["cells"][0]: r["cells"] for r in view["pipelines"]}
        assert set(pipelines) == {"traces", "metrics", "logs"} and pipelines["traces"][2] == "batch"
        view = settle(browser, lambda p: p["exporters"] and p["exporters"][0]["byClass"]["sent-rate"] not in ("-", "0.0"),
                      10, "the file exporter's spans per second")
        exporter = view["exporters"][0]
        assert exporter["data"]["exporter"] == "file" and exporter["cells"][1] == str(tmp_path / "out.jsonl")
        assert exporter["cells"][2] == "writing" and leading_number(exporter["byClass"]["sent-rate"]) > 0
        assert view["health"].startswith("version ") and " · up " in view["health"] and "RSS" in view["health"]

        # A service that starts now appears without a reload.
        apps.append(App("payments", [GrpcSpanExporter(endpoint=f"http://127.0.0.1:{daemon.grpc_port}", insecure=True)], 10))
        view = settle(browser, lambda p: "payments" in rows(p), 15, "payments' row")
        assert view["loadedOnce"] == "yes", "the page was not reloaded"

        # Sorting by spans: a second click sorts descending; checkout sends the most.
        header = browser.find_element(By.CSS_SELECTOR, "#senders th[data-sort=spans]")
        header.click()
        header.click()
        view = settle(browser, lambda p: p["senders"][0]["data"]["service"] == "checkout", 5, "checkout first, by spans descending")
        totals = [leading_number(r["cells"][5]) for r in view["senders"]]
        assert totals == sorted(totals, reverse=True), totals

        # Typing a name filters the rows, as grep would.
        browser.find_element(By.ID, "filter").send_keys("car")
        settle(browser, lambda p: list(rows(p)) == ["cart"], 5, "only cart after typing 'car'")
        browser.find_element(By.ID, "filter").clear()
        browser.execute_script("document.getElementById('filter').dispatchEvent(new Event('input'))")
        settle(browser, lambda p: len(p["senders"]) == 4, 5, "all four rows back")

        SCREENSHOT.parent.mkdir(exist_ok=True)
        browser.save_screenshot(str(SCREENSHOT))
        assert SCREENSHOT.stat().st_size > 10_000
    finally:
        for app in apps:
            app.stop()
    assert daemon.stop() == 0


def test_a_refused_feed_falls_back_to_polling(otlpd, tmp_path, browser):
    config = base_config(tmp_path)
    config["service"]["telemetry"]["metrics"]["max_feed_clients"] = 1
    daemon = otlpd.start(config)
    holder = curl_feed(daemon)
    try:
        wait_until(lambda: feed_clients(daemon, tmp_path) == 1, 5, "one feed client holding the only place")
        app = App("checkout", [GrpcSpanExporter(endpoint=f"http://127.0.0.1:{daemon.grpc_port}", insecure=True)], 20)
        try:
            browser.get(daemon.telemetry_url("/"))
            view = settle(browser, lambda p: "checkout" in senders(p), 15, "checkout's row, by polling")
            assert view["feed"] == "polling /services (live feed refused)"
            refused = daemon.logs_matching("status feed refused")
            assert refused and refused[0].fields["client"].startswith("127.0.0.1:"), "the refusal is logged with the client"
            spans = leading_number(senders(view)["checkout"]["cells"][5])
            settle(browser, lambda p: leading_number(senders(p)["checkout"]["cells"][5]) > spans, 10, "the polled page redraws")
        finally:
            app.stop()
    finally:
        holder.kill()
        holder.wait()
    # The place is given back when the client goes away.
    wait_until(lambda: feed_clients(daemon, tmp_path) == 0, 5, "the feed client gone")
    assert daemon.stop() == 0


def curl_feed(daemon):
    import subprocess
    return subprocess.Popen(["curl", "-sN", daemon.telemetry_url("/events")], stdout=subprocess.DEVNULL)


def feed_clients(daemon, tmp_path):
    import json
    return json.loads(curl(daemon.telemetry_url("/services"), workdir=tmp_path).body)["otlpd"]["feedClients"]
