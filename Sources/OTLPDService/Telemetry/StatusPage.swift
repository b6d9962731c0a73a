/// The live status page at `GET /` of the self-telemetry address: HTML, CSS
/// and a small script, all served from the binary (no fonts, scripts or CDNs
/// from elsewhere), under a Content-Security-Policy that allows only them
/// and requests back to this address. The script follows the live feed
/// (`/events`), or polls `/services` each second where the feed is refused,
/// and redraws; every name a client sent is put in as text, never as markup.
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
          <span id="feed"></span>
        </header>
        <section>
          <h2>Senders</h2>
          <input id="filter" type="search" placeholder="filter by service.name" autocomplete="off">
          <table id="senders">
            <thead><tr><th data-sort="name">service</th><th data-sort="spansPerSecond">spans/s</th><th data-sort="pointsPerSecond">points/s</th><th data-sort="logsPerSecond">logs/s</th><th>last 10 min</th><th data-sort="spans">spans</th><th data-sort="metricPoints">metric points</th><th data-sort="logRecords">log records</th><th data-sort="lastSeen">last seen</th><th data-sort="sdk">SDK</th><th data-sort="protocol">protocol</th><th data-sort="instances">instances</th><th data-sort="duplicateSpans">duplicates</th><th data-sort="errors">errors</th></tr></thead>
            <tbody></tbody>
          </table>
          <p id="no-senders" hidden>No data received yet.</p>
        </section>
        <section>
          <h2>Refusals</h2>
          <table id="refusals">
            <thead><tr><th>time</th><th>client</th><th>service</th><th>protocol</th><th>status</th><th>reason</th></tr></thead>
            <tbody></tbody>
          </table>
          <p id="no-refusals" hidden>No request refused.</p>
        </section>
        <section>
          <h2>Pipelines</h2>
          <table id="receivers">
            <thead><tr><th>receiver</th><th>listener</th><th>meant for</th><th>TLS</th><th>auth</th><th>open connections</th></tr></thead>
            <tbody></tbody>
          </table>
          <table id="pipelines">
            <thead><tr><th>pipeline</th><th>receivers</th><th>processors</th><th>exporters</th></tr></thead>
            <tbody></tbody>
          </table>
          <table id="exporters">
            <thead><tr><th>exporter</th><th>target</th><th>state</th><th>queue</th><th>oldest</th><th>sent/s</th><th>failed/s</th><th>dead-lettered/s</th><th>sent</th><th>failed</th><th>dead-lettered</th><th>last error</th></tr></thead>
            <tbody></tbody>
          </table>
        </section>
        </body>
        </html>

        """

    static let css = """
        body { font: 13px/1.4 system-ui, sans-serif; margin: 1.5em; color: #1d1d1f; }
        header { display: flex; gap: 1.5em; align-items: baseline; flex-wrap: wrap; }
        h1 { font-size: 1.4em; margin: 0; }
        h2 { font-size: 1.1em; margin: 1.5em 0 .5em; }
        table { border-collapse: collapse; width: 100%; margin-bottom: .8em; }
        th, td { text-align: left; padding: .25em .5em; border-bottom: 1px solid #e3e3e6; white-space: nowrap; }
        td.name { white-space: normal; overflow-wrap: anywhere; max-width: 18em; }
        td.protocol, td.target { white-space: normal; overflow-wrap: anywhere; }
        th[data-sort] { cursor: pointer; user-select: none; }
        th.sorted-up::after { content: " ▲"; }
        th.sorted-down::after { content: " ▼"; }
        td.number { text-align: right; font-variant-numeric: tabular-nums; }
        tr.stale td { color: #8e8e93; }
        tr.gone td.seen { color: #c62828; font-weight: 600; }
        .mark { color: #c62828; font-weight: 600; margin-left: .4em; }
        .hint { color: #b26a00; margin-left: .4em; }
        #filter { margin-bottom: .6em; padding: .3em .5em; width: 20em; }
        #health.down { color: #c62828; }
        #feed { color: #8e8e93; }
        .spark-line { fill: none; stroke: #1565c0; stroke-width: 1.5; }
        td.reason, td.error { white-space: normal; }
        td.state-retrying { color: #b26a00; font-weight: 600; }
        td.state-down { color: #c62828; font-weight: 600; }

        """

    static let script = """
        "use strict";
        const el = (tag, text, cls) => { const e = document.createElement(tag); if (text !== undefined) e.textContent = String(text); if (cls) e.className = cls; return e; };
        const ago = (iso) => { if (!iso) return null; return Math.max(0, (Date.now() - Date.parse(iso)) / 1000); };
        const agoText = (s) => s === null ? "-" : s < 60 ? Math.floor(s) + "s ago" : s < 3600 ? Math.floor(s / 60) + "m ago" : Math.floor(s / 3600) + "h ago";
        const bytes = (n) => n < 1024 ? n + " B" : n < 1048576 ? (n / 1024).toFixed(1) + " KiB" : (n / 1048576).toFixed(1) + " MiB";
        const rate = (n) => n === null ? "-" : n < 10 ? n.toFixed(1) : String(Math.round(n));
        // What each sortable column sorts by.
        const sortKeys = {
          name: (s) => s.name.toLowerCase(), spansPerSecond: (s) => s.perSecond.spans, pointsPerSecond: (s) => s.perSecond.metricPoints,
          logsPerSecond: (s) => s.perSecond.logRecords, spans: (s) => s.spans, metricPoints: (s) => s.metricPoints, logRecords: (s) => s.logRecords,
          lastSeen: (s) => -(ago(s.lastSeen) ?? Infinity), sdk: (s) => [s.sdk.language, s.sdk.version].join(" "), protocol: (s) => s.protocols.join(","),
          instances: (s) => s.instances, duplicateSpans: (s) => s.duplicateSpans, errors: (s) => s.errors,
        };
        let sort = { key: null, down: false };
        function senderRow(s) {
          const tr = el("tr");
          tr.dataset.service = s.name;
          const seen = ago(s.lastSeen);
          if (seen !== null && seen > 60) tr.classList.add("stale");
          if (seen !== null && seen > 300) tr.classList.add("gone");
          tr.append(el("td", s.name, "name"));
          tr.append(el("td", rate(s.perSecond.spans), "number rate spans-rate"), el("td", rate(s.perSecond.metricPoints), "number rate points-rate"), el("td", rate(s.perSecond.logRecords), "number rate logs-rate"));
          tr.append(sparkline(s.history));
          for (const n of [s.spans, s.metricPoints, s.logRecords]) tr.append(el("td", n, "number"));
          tr.append(el("td", agoText(seen), "seen"));
          tr.append(el("td", [s.sdk.language, s.sdk.version].filter(Boolean).join(" ") || "-", "sdk"));
          const protocol = el("td", (s.protocols.join(", ") || "-") + (s.ports.length ? " on :" + s.ports.join(", :") : ""), "protocol");
          if (s.wrongPort) protocol.append(el("span", "wrong port", "mark"));
          tr.append(protocol);
          tr.append(el("td", s.instances, "number instances"));
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
          svg.setAttribute("width", "90");
          svg.setAttribute("height", "20");
          svg.setAttribute("viewBox", "0 0 120 20");
          svg.setAttribute("preserveAspectRatio", "none");
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
          tr.append(el("td", r.time.replace("T", " ").replace("Z", ""), "time"), el("td", r.client, "client"), el("td", r.service || "-", "service"));
          tr.append(el("td", r.protocol || "connection", "protocol"), el("td", r.status || "-", "status"), el("td", r.reason, "reason"));
          return tr;
        }
        function receiverRows(receiver) {
          return receiver.listeners.map((l) => {
            const tr = el("tr");
            tr.dataset.receiver = receiver.id;
            tr.append(el("td", receiver.id), el("td", l.endpoint, "endpoint"), el("td", l.protocol, "protocol"), el("td", l.tls ? "on" : "off", "tls"));
            tr.append(el("td", l.auth || "none", "auth"), el("td", l.connections, "number connections"));
            return tr;
          });
        }
        function pipelineRow(p) {
          const tr = el("tr");
          tr.dataset.pipeline = p.id;
          tr.append(el("td", p.id), el("td", p.receivers.join(", ")), el("td", p.processors.join(" → ") || "-", "processors"), el("td", p.exporters.join(", ")));
          return tr;
        }
        // Each exporter's items per second, from the totals of the last two updates.
        let previous = null;
        let exporterRates = new Map();
        function measureExporters(data) {
          if (!data.pipelines) return;
          const statuses = new Map(data.exporters.map((s) => [s.exporter, s]));
          const now = data.otlpd.uptimeSeconds;
          const totals = new Map(data.pipelines.exporters.map((x) => [x.id, { sent: x.sent, failed: x.failed, deadLettered: statuses.has(x.id) ? statuses.get(x.id).deadLettered : null }]));
          if (previous && now > previous.time) {
            const dt = now - previous.time;
            exporterRates = new Map();
            for (const [id, t] of totals) {
              const b = previous.totals.get(id);
              const per = (key) => b && t[key] !== null && b[key] !== null ? Math.max(0, (t[key] - b[key]) / dt) : null;
              exporterRates.set(id, { sent: per("sent"), failed: per("failed"), deadLettered: per("deadLettered") });
            }
          }
          previous = { time: now, totals: totals };
        }
        function exporterRow(x, status, rates) {
          const tr = el("tr");
          tr.dataset.exporter = x.id;
          tr.append(el("td", x.id), el("td", x.target || "-", "target"));
          const state = status ? status.state : "writing";
          tr.append(el("td", state, "state state-" + state));
          const q = status ? status.queue : null;
          tr.append(el("td", q ? q.requests + " req, " + bytes(q.bytes) + (q.persistent ? " on disk" : "") + (q.full ? " (full: " + q.full + ")" : "") : "-", "queue"));
          tr.append(el("td", q && q.oldestSeconds !== null ? q.oldestSeconds + "s" : "-", "number oldest"));
          tr.append(el("td", rate(rates.sent), "number rate sent-rate"), el("td", rate(rates.failed), "number rate failed-rate"), el("td", rate(rates.deadLettered), "number rate dead-letter-rate"));
          tr.append(el("td", x.sent, "number sent"), el("td", x.failed, "number failed"), el("td", status ? status.deadLettered : "-", "number dead-lettered"));
          const error = status && status.queue.full ? "queue full: " + status.queue.full : status && status.lastError ? status.lastError + " (" + agoText(status.lastErrorSecondsAgo) + ")" : "-";
          tr.append(el("td", error, "error"));
          return tr;
        }
        function renderPipelines(data) {
          const view = data.pipelines || { receivers: [], pipelines: [], exporters: [] };
          document.querySelector("#receivers tbody").replaceChildren(...view.receivers.flatMap(receiverRows));
          document.querySelector("#pipelines tbody").replaceChildren(...view.pipelines.map(pipelineRow));
          const statuses = new Map(data.exporters.map((s) => [s.exporter, s]));
          const none = { sent: null, failed: null, deadLettered: null };
          document.querySelector("#exporters tbody").replaceChildren(...view.exporters.map((x) => exporterRow(x, statuses.get(x.id), exporterRates.get(x.id) || none)));
        }
        function render(data) {
          const filter = document.getElementById("filter").value.toLowerCase();
          let senders = data.services.filter((s) => s.name.toLowerCase().includes(filter));
          if (sort.key) {
            const key = sortKeys[sort.key];
            senders = senders.slice().sort((a, b) => { const x = key(a), y = key(b); return (x < y ? -1 : x > y ? 1 : 0) * (sort.down ? -1 : 1); });
          }
          document.querySelector("#senders tbody").replaceChildren(...senders.map(senderRow));
          document.getElementById("no-senders").hidden = data.services.length > 0;
          document.querySelector("#refusals tbody").replaceChildren(...data.refusals.map(refusalRow));
          document.getElementById("no-refusals").hidden = data.refusals.length > 0;
          renderPipelines(data);
          const p = data.otlpd;
          const health = document.getElementById("health");
          health.className = "";
          const limit = p.memoryLimitBytes === null ? "" : " of " + Math.round(p.memoryLimitBytes / 1048576) + " MiB (memory_limiter)";
          const reload = p.lastReload === null ? "" : " · last reload " + p.lastReload.time.replace("T", " ").replace("Z", "") + ": " + p.lastReload.result;
          health.textContent = "version " + p.version + " · " + p.config + " · up " + agoText(p.uptimeSeconds).replace(" ago", "") + " · RSS " + Math.round(p.rssBytes / 1048576) + " MiB · held " + Math.round(p.heldBytes / 1048576) + " MiB" + limit + reload;
        }
        let last = null;
        function update(data) {
          last = data;
          measureExporters(data);
          render(data);
        }
        function down(reason) {
          const health = document.getElementById("health");
          health.className = "down";
          health.textContent = "otlpd does not answer (" + reason + ")";
        }
        async function poll() {
          try {
            const response = await fetch("/services", { cache: "no-store" });
            update(await response.json());
          } catch (error) {
            down(error);
          }
        }
        // Polling /services each second: where the live feed is refused (too many viewers) or a proxy blocks it.
        let polling = null;
        function startPolling(why) {
          if (polling) return;
          document.getElementById("feed").textContent = "polling /services (" + why + ")";
          poll();
          polling = setInterval(poll, 1000);
        }
        function startFeed() {
          if (!window.EventSource) { startPolling("no EventSource"); return; }
          const source = new EventSource("/events");
          let opened = false;
          source.addEventListener("open", () => { opened = true; document.getElementById("feed").textContent = "live"; });
          source.addEventListener("status", (event) => update(JSON.parse(event.data)));
          source.addEventListener("error", () => {
            // Closed for good (refused): poll instead; otherwise the browser reconnects by itself.
            if (source.readyState === EventSource.CLOSED) startPolling(opened ? "feed closed" : "live feed refused");
            else if (opened) { document.getElementById("feed").textContent = "reconnecting…"; down("connection lost"); }
          });
        }
        document.addEventListener("DOMContentLoaded", () => {
          document.getElementById("filter").addEventListener("input", () => { if (last) render(last); });
          for (const th of document.querySelectorAll("#senders th[data-sort]")) {
            th.addEventListener("click", () => {
              sort = { key: th.dataset.sort, down: sort.key === th.dataset.sort ? !sort.down : false };
              for (const other of document.querySelectorAll("#senders th")) other.classList.remove("sorted-up", "sorted-down");
              th.classList.add(sort.down ? "sorted-down" : "sorted-up");
              if (last) render(last);
            });
          }
          startFeed();
        });

        """
}
