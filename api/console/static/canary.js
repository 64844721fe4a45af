/* The canary (or shadow) page: uPlot charts of each compared metric's anytime-valid interval over the analysis
   windows with its tolerance, the evidence per arm, confirmations for the actions, and live updates from the
   console's server-sent-events hub (canary.metrics, canary.recommendations, deploy.events): no polling. */
(function () {
  "use strict";
  var view = JSON.parse(document.getElementById("canary-data").textContent);
  var HIGHER_IS_WORSE = { error_rate: true };
  var TITLES = {
    accuracy: "Accuracy: canary − production",
    error_rate: "Error rate: canary − production",
    latency: "Latency quantile (ms): canary and production",
  };
  var charts = {};
  var x = view.series.x.slice();
  var metrics = view.series.metrics;
  var arms = view.series.arms;
  var container = document.getElementById("charts");

  function width(el) { return Math.max(320, (el.clientWidth || 460) - 16); }

  function metricPoint(row) {
    if (row.metric === "latency") {
      var ci = row.canary_interval_ms || [null, null];
      return { canary: row.canary_ms, low: ci[0], high: ci[1], baseline: row.baseline_ms, limit: row.limit_ms };
    }
    var iv = row.anytime_valid_interval || [null, null];
    var tol = row.tolerance;
    if (tol != null && !HIGHER_IS_WORSE[row.metric]) tol = -tol;
    return { difference: row.difference, low: iv[0], high: iv[1], tolerance: tol };
  }

  function spec(name, cols) {
    var n = x.length;
    function col(k) { return cols[k] || new Array(n).fill(null); }
    if (name === "latency") {
      return {
        data: [x, col("high"), col("low"), col("canary"), col("baseline"), col("limit")],
        series: [
          {},
          { label: "canary high", stroke: "rgba(191,135,0,.35)", width: 1 },
          { label: "canary low", stroke: "rgba(191,135,0,.35)", width: 1 },
          { label: "canary", stroke: "#bf8700", width: 2 },
          { label: "production", stroke: "#1a7f37", width: 2 },
          { label: "limit (tolerance)", stroke: "#cf222e", width: 1.5, dash: [6, 4] },
        ],
        bands: [{ series: [1, 2], fill: "rgba(191,135,0,.15)" }],
      };
    }
    return {
      data: [x, col("high"), col("low"), col("difference"), col("tolerance"), new Array(n).fill(0)],
      series: [
        {},
        { label: "interval high", stroke: "rgba(9,105,218,.35)", width: 1, points: { show: false } },
        { label: "interval low", stroke: "rgba(9,105,218,.35)", width: 1, points: { show: false } },
        { label: "difference", stroke: "#0969da", width: 2, points: { show: n < 200 } },
        { label: "tolerance", stroke: "#cf222e", width: 1.5, dash: [6, 4], points: { show: false } },
        { label: "no difference", stroke: "#8c959f", width: 1, points: { show: false } },
      ],
      bands: [{ series: [1, 2], fill: "rgba(9,105,218,.15)" }],
    };
  }

  function makeBox(key, title, note) {
    var box = document.createElement("div");
    box.className = "b-chart";
    box.id = "chart-" + key;
    box.innerHTML = "<h3></h3><p></p>";
    box.querySelector("h3").textContent = title;
    box.querySelector("p").textContent = note;
    container.appendChild(box);
    return box;
  }

  function makeChart(key, box, s) {
    // every box is in the grid before any is measured: each chart takes its own column's width
    var opts = {
      width: width(box), height: 220, series: s.series, bands: s.bands,
      scales: { x: { time: true } }, legend: { live: false },
      axes: [{}, { size: 60 }],
    };
    charts[key] = { plot: new uPlot(opts, s.data, box), spec: s };
  }

  function render() {
    Object.keys(charts).forEach(function (k) { charts[k].plot.destroy(); delete charts[k]; });
    container.innerHTML = "";
    var todo = [];
    Object.keys(metrics).forEach(function (name) {
      var note = name === "latency"
        ? "each arm's quantile with the canary's anytime-valid interval; dashed: the limit production's quantile allows"
        : "difference of proportions (0.01 = 1 pt), " + (HIGHER_IS_WORSE[name] ? "worse upwards" : "worse downwards") +
          "; level " + levelOf(name);
      todo.push([name, makeBox(name, TITLES[name] || name + ": canary − production", note), spec(name, metrics[name])]);
    });
    todo.push(["evidence", makeBox("evidence", "Requests and labels per arm", "cumulative, per window"), {
      data: [x, arms.canary_requests, arms.baseline_requests, arms.canary_labelled, arms.baseline_labelled],
      series: [
        {},
        { label: view.kind + " requests", stroke: "#bf8700", width: 2 },
        { label: "production requests", stroke: "#1a7f37", width: 2 },
        { label: view.kind + " labelled", stroke: "#bf8700", width: 1, dash: [4, 3] },
        { label: "production labelled", stroke: "#1a7f37", width: 1, dash: [4, 3] },
      ],
    }]);
    todo.forEach(function (t) { makeChart(t[0], t[1], t[2]); });
  }

  function levelOf(name) {
    var row = (view.comparison || []).find(function (r) { return r.metric === name; });
    return row && row.level != null ? (row.level * 100).toFixed(1) + " %" : "";
  }

  function addWindow(data) {
    x.push(Date.parse(data.window_end) / 1000);
    var seen = {};
    (data.comparison || []).forEach(function (row) {
      if (!row.metric) return;
      seen[row.metric] = true;
      var p = metricPoint(row);
      var cols = metrics[row.metric];
      if (!cols) {
        cols = metrics[row.metric] = {};
        Object.keys(p).forEach(function (k) { cols[k] = new Array(x.length - 1).fill(null); });
      }
      Object.keys(p).forEach(function (k) { (cols[k] = cols[k] || new Array(x.length - 1).fill(null)).push(p[k]); });
      view.comparison = data.comparison;
    });
    Object.keys(metrics).forEach(function (name) {
      if (seen[name]) return;
      Object.keys(metrics[name]).forEach(function (k) { metrics[name][k].push(null); });
    });
    var totals = data.totals || {};
    var c = totals.canary || totals.shadow || {}, b = totals.baseline || {};
    arms.canary_requests.push(c.requests); arms.baseline_requests.push(b.requests);
    arms.canary_labelled.push(c.labelled); arms.baseline_labelled.push(b.labelled);
    updateArms(c, b);
    document.getElementById("window-count").textContent = x.length;
    refresh();
  }

  function refresh() {
    var names = Object.keys(metrics);
    if (names.some(function (n) { return !charts[n]; })) return render();
    names.forEach(function (n) { charts[n].plot.setData(spec(n, metrics[n]).data); });
    charts.evidence.plot.setData([x, arms.canary_requests, arms.baseline_requests, arms.canary_labelled, arms.baseline_labelled]);
  }

  function updateArms(c, b) {
    [[view.kind, c], ["production", b]].forEach(function (pair) {
      var tr = document.querySelector('#arms tr[data-arm="' + pair[0] + '"]');
      if (!tr) return;
      var f = pair[1], set = function (k, v) { var td = tr.querySelector('[data-k="' + k + '"]'); if (td && v != null) td.textContent = v; };
      set("requests", f.requests); set("errors", f.errors); set("labelled", f.labelled);
      set("waiting", f.waiting_for_label); set("too_late", f.labels_too_late);
      if (f.latency_p95_ms != null) set("p95", Number(f.latency_p95_ms).toFixed(1));
    });
  }

  function addVerdict(data, time) {
    var none = document.getElementById("no-verdict");
    if (none) none.remove();
    var li = document.createElement("li");
    var badge = document.createElement("span");
    badge.className = "badge " + data.recommendation;
    badge.textContent = data.recommendation;
    var meta = document.createElement("span");
    meta.className = "muted";
    meta.textContent = " " + (time || "") + (data.previous ? " (was " + data.previous + ")" : "") + " ";
    li.appendChild(badge); li.appendChild(meta); li.appendChild(document.createTextNode(data.reason_en || ""));
    document.getElementById("verdict-history").appendChild(li);
    var v = document.getElementById("verdict");
    v.textContent = data.recommendation; v.className = "badge " + data.recommendation;
    document.getElementById("reason").textContent = data.reason_en || "";
  }

  function follow(topic, params, onItems) {
    var q = new URLSearchParams(params);
    var after = (view.live || {})[topic];
    if (after != null) q.set("after", after);
    var es = new EventSource("/ui/stream/" + topic + "?" + q.toString());
    es.onmessage = function (ev) {
      var items = JSON.parse(ev.data);
      if (items.length) onItems(items);
    };
    return es;
  }

  // confirmations before any action
  Array.prototype.forEach.call(document.querySelectorAll("form[data-confirm]"), function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.getAttribute("data-confirm"))) ev.preventDefault();
    });
  });

  render();
  var resizeTimer = null;
  window.addEventListener("resize", function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(render, 200); });

  follow("canary.metrics", { subject: view.id }, function (items) {
    items.forEach(function (it) { if (it.data && it.data.canary_id === view.id && it.data.window_end) addWindow(it.data); });
  });
  follow("canary.recommendations", { subject: view.id }, function (items) {
    items.forEach(function (it) { if (it.data && it.data.canary_id === view.id) addVerdict(it.data, it.time); });
  });
  // a deployment step of this canary (traffic raised, promoted, rolled back, emergency rollback): the page shows
  // it in place, with no navigation (a reload could swallow a click on one of the buttons)
  follow("deploy.events", {}, function (items) {
    items.forEach(function (it) {
      var d = it.data || {};
      var named = d.canary_id === view.id || d.shadow_id === view.id;
      if (!named || !d.state || (view.version != null && d.state.version <= view.version)) return;
      view.version = d.state.version;
      var status = view.kind === "shadow" ? d.shadow_status : d.canary_status;
      if (status) {
        var el = document.getElementById("status");
        el.textContent = status; el.className = "badge " + status;
      }
      if (d.action === "traffic_increased" && d.percentage != null) {
        var pct = document.getElementById("percentage");
        if (pct) pct.textContent = d.percentage + " %";
        var body = document.querySelector("#steps tbody");
        if (body) {
          var tr = document.createElement("tr");
          [it.time || "", d.percentage + " %", d.actor || ""].forEach(function (t) {
            var td = document.createElement("td"); td.textContent = t; tr.appendChild(td);
          });
          body.appendChild(tr);
        }
      }
      if (status && status !== "monitoring") {
        Array.prototype.forEach.call(document.querySelectorAll("#actions button:not([data-action=emergency]), #actions input"),
          function (b) { b.disabled = true; });
      }
    });
  });
  window.canaryPage = { view: view, charts: charts };
})();
