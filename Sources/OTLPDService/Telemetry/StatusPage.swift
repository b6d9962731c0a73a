/// The live status page at `GET /` of the self-telemetry address: HTML, CSS
/// and a small script, all served from the binary (no fonts, scripts or CDNs
/// from elsewhere), under a Content-Security-Policy that allows only them
/// and requests back to this address. The script reads `/services` each
/// second and redraws; every name a client sent is put in as text, never
/// as markup.
enum StatusPage {
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static let html = """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>otlpd</title>
        <link rel="stylesheet" href="/status.css">
        <script src="/status.js" defer></script>
        </head>
        <body>
        <header>
          <h1>otlpd</h1>
          <span id="health">connecting…</span>
        </header>
        <section>
          <h2>Senders</h2>
          <input id="filter" type="search" placeholder="filter by service.name" autocomplete="off">
          <table id="senders">
            <thead><tr><th>service</th><th>spans/s</th><th>points/s</th><th>logs/s</th><th>last 10 min</th><th>spans</th><th>metric points</th><th>log records</th><th>last seen</th><th>SDK</th><th>protocol</th><th>instances</th><th>duplicates</th><th>errors</th></tr></thead>
            <tbody></tbody>
          </table>
          <p id="no-senders" hidden>No data received yet.</p>
        </section>
        <section>
          <h2>Refusals</h2>
          <table id="refusals">
            <thead><tr><th>time</th><th>client</th><th>protocol</th><th>status</th><th>reason</th></tr></thead>
            <tbody></tbody>
          </table>
          <p id="no-refusals" hidden>No request refused.</p>
        </section>
        <section>
          <h2>Exporters</h2>
          <table id="exporters">
            <thead><tr><th>exporter</th><th>target</th><th>state</th><th>queue</th><th>oldest</th><th>sent</th><th>failed</th><th>dead-lettered</th><th>last error</th></tr></thead>
            <tbody></tbody>
          </table>
          <p id="no-exporters" hidden>No forwarding exporter.</p>
        </section>
        </body>
        </html>

        """

    static let css = """
        body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d1d1f; }
        header { display: flex; gap: 1.5em; align-items: baseline; }
        h1 { font-size: 1.4em; margin: 0; }
        h2 { font-size: 1.1em; margin: 1.5em 0 .5em; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: .25em .6em; border-bottom: 1px solid #e3e3e6; white-space: nowrap; }
        td.number { text-align: right; font-variant-numeric: tabular-nums; }
        tr.stale td { color: #8e8e93; }
        tr.gone td.seen { color: #c62828; font-weight: 600; }
        .mark { color: #c62828; font-weight: 600; margin-left: .4em; }
        .hint { color: #b26a00; margin-left: .4em; }
        #filter { margin-bottom: .6em; padding: .3em .5em; width: 20em; }
        #health.down { color: #c62828; }
        .spark-line { fill: none; stroke: #1565c0; stroke-width: 1.5; }
        td.reason { white-space: normal; }

        """

    static let script = """
        "use strict";
        const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; };
        const ago = (iso) => { if (!iso) return null; return Math.max(0, (Date.now() - Date.parse(iso)) / 1000); };
        const agoText = (s) => s === null ? "-" : s < 60 ? Math.floor(s) + "s ago" : s < 3600 ? Math.floor(s / 60) + "m ago" : Math.floor(s / 3600) + "h ago";
        function senderRow(s) {
          const tr = el("tr");
          tr.dataset.service = s.name;
          const seen = ago(s.lastSeen);
          if (seen !== null && seen > 60) tr.classList.add("stale");
          if (seen !== null && seen > 300) tr.classList.add("gone");
          tr.append(el("td", s.name, "name"));
          for (const n of [s.perSecond.spans, s.perSecond.metricPoints, s.perSecond.logRecords]) tr.append(el("td", n, "number rate"));
          tr.append(sparkline(s.history));
          for (const n of [s.spans, s.metricPoints, s.logRecords]) tr.append(el("td", n, "number"));
          tr.append(el("td", agoText(seen), "seen"));
          tr.append(el("td", [s.sdk.language, s.sdk.version].filter(Boolean).join(" ") || "-", "sdk"));
          const protocol = el("td", s.protocols.join(", ") || "-", "protocol");
          if (s.wrongPort) protocol.append(el("span", "wrong port", "mark"));
          tr.append(protocol);
          tr.append(el("td", s.instances, "number"));
          const duplicates = el("td", s.duplicateSpans, "number duplicates");
          if (s.duplicateSpans > 0) duplicates.append(el("span", "SDK initialised twice?", "hint"));
          tr.append(duplicates);
          tr.append(el("td", s.errors, "number errors"));
          return tr;
        }
        function sparkline(values) {
          const td = el("td", undefined, "spark");
          const ns = "http://www.w3.org/2000/svg";
          const svg = document.createElementNS(ns, "svg");
          svg.setAttribute("width", "120");
          svg.setAttribute("height", "20");
          svg.setAttribute("viewBox", "0 0 120 20");
          const max = Math.max(1, ...values);
          const points = values.map((v, i) => (i * 120 / (values.length - 1)).toFixed(1) + "," + (19 - v * 18 / max).toFixed(1));
          const line = document.createElementNS(ns, "polyline");
          line.setAttribute("points", points.join(" "));
          line.setAttribute("class", "spark-line");
          svg.append(line);
          td.append(svg);
          return td;
        }
        function refusalRow(r) {
          const tr = el("tr");
          tr.append(el("td", r.time.replace("T", " ").replace("Z", ""), "time"), el("td", r.client), el("td", r.protocol || "connection"));
          tr.append(el("td", r.status || "-"), el("td", r.reason, "reason"));
          return tr;
        }
        function exporterRow(x) {
          const tr = el("tr");
          tr.dataset.exporter = x.exporter;
          tr.append(el("td", x.exporter), el("td", x.target), el("td", x.state, "state"));
          const q = x.queue;
          tr.append(el("td", q.requests + " req, " + q.bytes + " B" + (q.persistent ? " on disk" : "") + (q.full ? " (full: " + q.full + ")" : ""), "queue"));
          tr.append(el("td", q.oldestSeconds === null ? "-" : q.oldestSeconds + "s", "number"));
          tr.append(el("td", x.sent, "number"), el("td", x.failed, "number"), el("td", x.deadLettered, "number"));
          tr.append(el("td", x.lastError || "-", "error"));
          return tr;
        }
        function render(data) {
          const filter = document.getElementById("filter").value.toLowerCase();
          const senders = data.services.filter((s) => s.name.toLowerCase().includes(filter));
          document.querySelector("#senders tbody").replaceChildren(...senders.map(senderRow));
          document.getElementById("no-senders").hidden = data.services.length > 0;
          document.querySelector("#refusals tbody").replaceChildren(...data.refusals.map(refusalRow));
          document.getElementById("no-refusals").hidden = data.refusals.length > 0;
          document.querySelector("#exporters tbody").replaceChildren(...data.exporters.map(exporterRow));
          document.getElementById("no-exporters").hidden = data.exporters.length > 0;
          const p = data.otlpd;
          const health = document.getElementById("health");
          health.className = "";
          const limit = p.memoryLimitBytes === null ? "" : " of " + Math.round(p.memoryLimitBytes / 1048576) + " MiB (memory_limiter)";
          const reload = p.lastReload === null ? "" : " · last reload " + p.lastReload.time.replace("T", " ").replace("Z", "") + ": " + p.lastReload.result;
          health.textContent = "version " + p.version + " · " + p.config + " · up " + agoText(p.uptimeSeconds).replace(" ago", "") + " · RSS " + Math.round(p.rssBytes / 1048576) + " MiB · held " + Math.round(p.heldBytes / 1048576) + " MiB" + limit + reload;
        }
        let last = null;
        async function poll() {
          try {
            const response = await fetch("/services", { cache: "no-store" });
            last = await response.json();
            render(last);
          } catch (error) {
            const health = document.getElementById("health");
            health.className = "down";
            health.textContent = "otlpd does not answer (" + error + ")";
          }
        }
        document.addEventListener("DOMContentLoaded", () => {
          document.getElementById("filter").addEventListener("input", () => { if (last) render(last); });
          poll();
          setInterval(poll, 1000);
        });

        """
}
