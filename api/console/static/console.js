/* modelbus console: live pages over server-sent events, actions through the JSON API with the session
   cookie and the CSRF header, charts with uPlot (vendored). No framework, no other host. */
"use strict";

const MB = (() => {
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  /* The JSON API with the console session: same routes, same scopes, same limits as any client. */
  async function api(method, url, body) {
    const headers = { "Accept": "application/json", "X-CSRF-Token": csrf() };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const resp = await fetch(url, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await resp.json(); } catch (e) { data = null; }
    return { ok: resp.ok, status: resp.status, data };
  }

  function errorText(r) {
    const e = r.data && r.data.error;
    return e ? `${r.status} ${e.code}: ${e.message}` : `HTTP ${r.status}`;
  }

  function toast(message, bad) {
    const box = document.getElementById("toast");
    if (!box) return;
    const div = document.createElement("div");
    div.textContent = message;
    if (bad) div.className = "bad";
    box.appendChild(div);
    setTimeout(() => div.remove(), bad ? 8000 : 4000);
  }

  /* A live topic: /ui/stream/<topic>, resumed by the browser (Last-Event-ID) when a stream ends. */
  function stream(topic, after, params, onItems) {
    const q = new URLSearchParams(params || {});
    if (after !== undefined && after !== null) q.set("after", after);
    const state = document.getElementById("live-state");
    let last = after || 0;
    const es = new EventSource(`/ui/stream/${encodeURIComponent(topic)}?${q}`);
    es.onopen = () => { if (state) { state.classList.add("on"); state.classList.remove("off"); } };
    es.onerror = () => {
      if (state) { state.classList.remove("on"); state.classList.add("off"); }
      if (es.readyState === EventSource.CLOSED) {  // refused (session expired): the browser will not retry
        if (state) state.textContent = "disconnected";
        toast("Live updates stopped: the session has expired, or the server cannot read Kafka. Reload the page.", true);
      }
    };
    es.onmessage = (ev) => {
      let items;
      try { items = JSON.parse(ev.data); } catch (e) { return; }
      items = items.filter((it) => it.seq > last);
      if (ev.lastEventId) last = Math.max(last, Number(ev.lastEventId));
      if (items.length) onItems(items);
    };
    window.addEventListener("pagehide", () => es.close());
    return es;
  }

  function streams(el, handlers) {
    const seqs = JSON.parse(el.dataset.streams || "{}");
    for (const [topic, fn] of Object.entries(handlers)) stream(topic, seqs[topic], fn.params, fn);
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v; else if (k === "text") node.textContent = v; else node.setAttribute(k, v);
    }
    for (const c of children) node.append(c);
    return node;
  }

  const fmt = (v) => (typeof v === "number" ? Number(v.toPrecision(4)).toString() : v === null || v === undefined ? "—" : String(v));

  /* Every button with data-cancel: confirm, then POST the domain's own cancel route. */
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("button[data-cancel]");
    if (!btn || btn.disabled) return;
    ev.preventDefault();
    if (!window.confirm(`Cancel job ${btn.dataset.job}? The worker stops at its next progress step.`)) return;
    btn.disabled = true;
    const r = await api("POST", btn.dataset.cancel);
    if (r.ok) toast(`Cancel requested for ${btn.dataset.job}`);
    else { toast(`Cancel refused: ${errorText(r)}`, true); btn.disabled = false; }
  });

  return { csrf, api, errorText, toast, stream, streams, el, fmt };
})();

/* ---- jobs ------------------------------------------------------------------------------------- */
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
const JOB = "modelbus.train.job.";

function jobUpdate(item) {
  const d = item.data || {};
  const t = item.type || "";
  if (!d.job_id) return null;
  if (t === JOB + "requested") return { id: d.job_id, status: "started", progress: 0, requested: d };
  if (t === JOB + "running") return { id: d.job_id, status: "running" };
  if (t === JOB + "progress") return { id: d.job_id, status: "running", progress: d.progress, figures: d.figures };
  if (t === JOB + "completed") return { id: d.job_id, status: "completed", progress: 100, completed: d };
  if (t === JOB + "failed") return { id: d.job_id, status: "failed", error: d.reason };
  if (t === JOB + "cancelled") return { id: d.job_id, status: "cancelled", error: d.reason };
  if (t === JOB + "cancel_requested") return { id: d.job_id, cancelling: true };
  return null;
}

function applyStatus(badge, holder, u) {
  const current = holder.dataset.status;
  if (TERMINAL.has(current)) return false;  // a finished job does not change again
  if (u.status && !(u.status === "started" && current === "running")) {
    holder.dataset.status = u.status;
    badge.textContent = u.status;
    badge.className = `badge s-${u.status}`;
  }
  if (u.cancelling && !TERMINAL.has(holder.dataset.status)) badge.textContent = `${holder.dataset.status} (cancelling)`;
  return true;
}

function setBar(bar, label, progress) {
  if (progress === undefined || progress === null) return;
  const span = bar.querySelector("span");
  const now = parseFloat(span.style.width) || 0;
  const p = Math.max(now, Math.min(100, progress));
  span.style.width = `${p}%`;
  if (label) label.textContent = `${p.toFixed(1)}%`;
}

function jobRow(table, u) {
  const d = u.requested;
  const canCancel = table.dataset.canCancel === "true";
  const cancelPath = { tabular: `/v1/ml/train/${d.job_id}/cancel`, rl: `/api/v1/training/${d.job_id}/cancel` }[d.domain];
  const { el } = MB;
  const bar = el("div", { class: "bar", "data-field": "bar" }, el("span", { style: "width: 0%" }));
  const btn = cancelPath
    ? el("button", { class: "danger small", "data-cancel": cancelPath, "data-job": d.job_id, disabled: !canCancel, title: canCancel ? null : "needs the train scope", text: "Cancel" })
    : "";
  const when = (d.submitted_at || "").replace("T", " ").slice(0, 19);
  return el("tr", { "data-job-id": d.job_id, "data-status": "started", class: "flash" },
    el("td", {}, el("a", { href: `/ui/jobs/${d.job_id}`, text: d.job_id })),
    el("td", { text: d.domain }), el("td", { text: d.model_type }),
    el("td", {}, el("span", { class: "badge s-started", "data-field": "status", text: "started" })),
    el("td", {}, bar, el("small", { "data-field": "progress", text: "0.0%" })),
    el("td", {}, el("time", { datetime: d.submitted_at, text: when })),
    el("td", { "data-field": "duration" }), el("td", { "data-field": "model" }), el("td", {}, btn));
}

function initJobs(table) {
  const body = table.tBodies[0];
  const want = (d) => (!table.dataset.domain || table.dataset.domain === d.domain)
    && (!table.dataset.status || ["started", "active"].includes(table.dataset.status));
  const onItems = (items) => {
    for (const item of items) {
      const u = jobUpdate(item);
      if (!u) continue;
      let row = body.querySelector(`tr[data-job-id="${CSS.escape(u.id)}"]`);
      if (!row && u.requested && want(u.requested)) {
        const empty = body.querySelector("tr.empty");
        if (empty) empty.remove();
        row = jobRow(table, u);
        body.prepend(row);
        const count = document.getElementById("job-count");
        if (count) count.textContent = String(body.querySelectorAll("tr[data-job-id]").length);
      }
      if (!row) continue;
      if (!applyStatus(row.querySelector('[data-field="status"]'), row, u)) continue;
      setBar(row.querySelector('[data-field="bar"]'), row.querySelector('[data-field="progress"]'), u.progress);
      if (TERMINAL.has(u.status) && item.time) {
        const submitted = Date.parse((row.querySelector("time") || {}).dateTime || "");
        const minutes = (Date.parse(item.time) - submitted) / 60000;
        if (minutes >= 0) row.querySelector('[data-field="duration"]').textContent = `${minutes.toFixed(2)} min`;
      }
      if (u.completed && u.completed.model_id) {
        const cell = row.querySelector('[data-field="model"]');
        cell.replaceChildren(MB.el("a", { href: `/ui/models/${u.completed.model_id}`, text: u.completed.model_id }));
      }
      if (TERMINAL.has(row.dataset.status)) {
        const btn = row.querySelector("button[data-cancel]");
        if (btn) btn.remove();
      }
    }
  };
  const handlers = { "train.commands": onItems, "train.events": onItems };
  MB.streams(table, handlers);
}

function progressChart(host) {
  if (!window.uPlot || !host) return null;
  const data = [[Date.now() / 1000], [parseFloat(document.getElementById("job-progress").textContent) || 0]];
  const chart = new uPlot({
    width: host.clientWidth || 600, height: 180, title: "progress (%) over time",
    scales: { x: { range: (u, min, max) => (max - min < 30 ? [min - 5, min + 60] : [min, max]) }, y: { range: [0, 100] } },
    series: [{}, { label: "progress", stroke: "#2d5bd7", width: 2, fill: "rgba(45,91,215,0.08)" }],
  }, data, host);
  return {
    push(p) { data[0].push(Date.now() / 1000); data[1].push(p); chart.setData(data); },
  };
}

const LOWER_IS_BETTER = new Set(["false_positive_rate", "loss", "latency", "mean_latency", "overload", "cost"]);

function fillMetrics(completed) {
  const tbody = document.querySelector("#metrics tbody");
  if (!tbody) return;
  const base = (completed.result && completed.result.baseline) || {};
  const rows = [];
  for (const [name, v] of Object.entries(completed.metrics || {})) {
    if (typeof v !== "number") continue;
    const b = typeof base[name] === "number" ? base[name] : null;
    const delta = b === null ? null : v - b;
    const better = !delta ? null : (delta < 0) === LOWER_IS_BETTER.has(name);
    rows.push(MB.el("tr", {}, MB.el("td", { text: name }), MB.el("td", { class: "num", text: MB.fmt(v) }),
      MB.el("td", { class: "num", text: MB.fmt(b) }),
      MB.el("td", { class: `num ${better === true ? "pos" : better === false ? "neg" : ""}`, text: delta === null ? "" : (delta > 0 ? "+" : "") + MB.fmt(delta) })));
  }
  if (rows.length) tbody.replaceChildren(...rows);
}

function initJob(section) {
  const id = section.dataset.jobId;
  const badge = document.getElementById("job-status");
  const chart = progressChart(document.getElementById("progress-chart"));
  const onItems = (items) => {
    for (const item of items) {
      const u = jobUpdate(item);
      if (!u || u.id !== id) continue;
      if (!applyStatus(badge, section, u)) continue;
      if (u.progress !== undefined) {
        setBar(document.getElementById("job-bar"), document.getElementById("job-progress"), u.progress);
        if (chart) chart.push(u.progress);
      }
      if (u.completed) {
        fillMetrics(u.completed);
        document.getElementById("job-model").replaceChildren("Model: ",
          MB.el("a", { href: `/ui/models/${u.completed.model_id}`, text: u.completed.model_id }));
      }
      if (u.error) { const e = document.getElementById("job-error"); e.textContent = u.error; e.hidden = false; }
      if (TERMINAL.has(section.dataset.status)) { const b = document.getElementById("cancel"); if (b) b.disabled = true; }
    }
  };
  MB.streams(section, { "train.events": onItems });
}

/* ---- models ----------------------------------------------------------------------------------- */
const KEY_METRICS = {
  tabular: ["f1_score", "roc_auc", "precision", "recall", "anomaly_rate"],
  lotto: ["prediction_accuracy", "mean_matches", "hit_rate_3plus"],
  rl: ["normalised_score", "mean_reward", "latency"],
};

function modelWanted(table, d) {
  return (!table.dataset.domain || table.dataset.domain === d.domain)
    && (!table.dataset.status || table.dataset.status === "trained");
}

function modelRow(d) {
  const { el, fmt } = MB;
  const metrics = d.metrics || {};
  let names = (KEY_METRICS[d.domain] || []).filter((n) => typeof metrics[n] === "number");
  if (!names.length) names = Object.keys(metrics).filter((n) => typeof metrics[n] === "number").slice(0, 3);
  const lineage = d.lineage || {};
  const period = lineage.data_period ? `${lineage.data_period.start_date} → ${lineage.data_period.end_date}` : "";
  return el("tr", { "data-model-id": d.model_id, class: "flash" },
    el("td", {}, d.domain === "tabular" ? el("input", { type: "checkbox", class: "pick", value: d.model_id, "aria-label": `compare ${d.model_id}` }) : ""),
    el("td", { class: "nowrap" }, el("a", { href: `/ui/models/${d.model_id}`, text: d.model_name || d.model_id }), el("br"),
      el("small", {}, el("code", { text: d.model_id }))),
    el("td", { text: d.domain }), el("td", { text: d.model_type }), el("td", { text: d.version }),
    el("td", {}, el("span", { class: "badge s-trained", "data-field": "status", text: "trained" })),
    el("td", { class: "metrics" }, ...names.map((n) => el("span", {}, `${n} `, el("b", { text: fmt(metrics[n]) })))),
    el("td", {}, lineage.job_id ? el("a", { href: `/ui/jobs/${lineage.job_id}`, text: lineage.job_id }) : ""),
    el("td", { text: period }),
    el("td", { text: (d.trained_at || "").replace("T", " ").slice(0, 16) }));
}

function initModels(table) {
  const picks = () => [...table.querySelectorAll("input.pick:checked")].map((c) => c.value);
  table.addEventListener("change", (ev) => {
    if (!ev.target.classList.contains("pick")) return;
    const chosen = picks();
    if (chosen.length > 2) { ev.target.checked = false; return; }
    document.getElementById("cmp-a").value = chosen[0] || "";
    document.getElementById("cmp-b").value = chosen[1] || "";
    document.getElementById("compare-go").disabled = chosen.length !== 2;
  });
  const body = table.tBodies[0];
  MB.streams(table, {
    "model.events": (items) => {
      for (const item of items) {
        const d = item.data || {};
        const row = body.querySelector(`tr[data-model-id="${CSS.escape(d.model_id || "")}"]`);
        if (row && d.status) {
          const badge = row.querySelector('[data-field="status"]');
          badge.textContent = d.status; badge.className = `badge s-${d.status}`;
          row.classList.add("flash");
        } else if (!row && item.type === "modelbus.model.registered" && modelWanted(table, d)) {
          const empty = body.querySelector("tr.empty");
          if (empty) empty.remove();
          body.prepend(modelRow(d));
        }
      }
    },
  });
}

function compareChart(host, diff) {
  const names = Object.keys(diff.metrics).filter((n) => typeof diff.metrics[n].diff === "number");
  if (!names.length || !window.uPlot) return;
  const xs = names.map((_, i) => i);
  const m = (k) => names.map((n) => (typeof diff.metrics[n][k] === "number" ? diff.metrics[n][k] : null));
  const data = [xs, m("diff"), m("ci_low"), m("ci_high"), names.map(() => 0)];
  const level = Object.values(diff.metrics)[0].level;
  new uPlot({
    width: host.clientWidth || 700, height: 280,
    title: `${diff.model_id} − ${diff.versus} (${diff.method}, ${Math.round(level * 100)}% interval)`,
    scales: { x: { time: false, range: [-0.5, names.length - 0.5] } },
    axes: [{ splits: () => xs, values: (u, splits) => splits.map((i) => names[i] || "") }, { label: "difference" }],
    series: [
      {},
      { label: "difference", stroke: "#2d5bd7", width: 0, points: { show: true, size: 11, fill: "#2d5bd7" } },
      { label: "interval low", stroke: "#8a94a8", dash: [5, 4], points: { show: true, size: 6 } },
      { label: "interval high", stroke: "#8a94a8", dash: [5, 4], points: { show: true, size: 6 } },
      { label: "no difference", stroke: "#c53030", width: 1, points: { show: false } },
    ],
    bands: [{ series: [3, 2], fill: "rgba(45,91,215,0.12)" }],
  }, data, host);
}

async function initCompare(section) {
  const verdict = document.getElementById("compare-verdict");
  const r = await MB.api("POST", "/v1/ml/models/compare", { model_ids: [section.dataset.a, section.dataset.b] });
  if (!r.ok) { verdict.textContent = `No comparison: ${MB.errorText(r)}`; verdict.classList.add("error"); return; }
  const c = r.data;
  verdict.textContent = c.winner ? `Winner: ${c.winner}. ${c.reason}` : `No conclusive winner (leader ${c.leader}). ${c.reason}`;
  document.getElementById("compare-method").textContent = c.method ? `${c.method.resampling}; ${c.method.interval}; ${c.method.resamples} resamples. ${c.method.note}` : "";
  if (c.differences && c.differences.length) compareChart(document.getElementById("compare-chart"), c.differences[0]);
}

/* ---- events ----------------------------------------------------------------------------------- */
function initEvents(table) {
  const body = table.tBodies[0];
  const dlq = table.dataset.dlq === "true";
  let paused = false;
  const held = [];
  const pause = document.getElementById("pause");
  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? `Resume` : "Pause";
    if (!paused) { add(held.splice(0)); }
  });
  const { el } = MB;
  function row(item) {
    const h = item.headers || {};
    const when = item.time || h["x-failed-at"] || new Date(item.timestamp).toISOString();
    const what = dlq
      ? el("td", {}, el("span", { class: "error", text: h["x-error-type"] || "" }), el("br"), el("small", { text: h["x-error"] || "" }))
      : el("td", { text: item.type || "" });
    const details = el("details", {}, el("summary", { text: `${item.bytes} bytes` }));
    if (dlq) {
      const kv = el("table", { class: "kv" });
      for (const [k, v] of Object.entries(h)) kv.append(el("tr", {}, el("th", { text: k }), el("td", { text: v })));
      details.append(kv);
    }
    details.append(el("pre", { text: typeof item.data === "string" ? item.data : JSON.stringify(item.data, null, 1) }));
    return el("tr", { class: "flash" }, el("td", {}, el("small", { text: when })), what,
      el("td", {}, el("code", { text: item.subject || item.key || "" })),
      el("td", { text: `${item.partition}:${item.offset}` }), el("td", {}, details));
  }
  function add(items) {
    if (!items.length) return;
    const empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    for (const item of items) body.prepend(row(item));
    while (body.rows.length > 500) body.lastElementChild.remove();
  }
  const params = {};
  if (table.dataset.type) params.type = table.dataset.type;
  if (table.dataset.subject) params.subject = table.dataset.subject;
  const handler = (items) => { if (paused) held.push(...items); else add(items); };
  handler.params = params;
  MB.streams(table, { [table.dataset.topic]: handler });
  document.getElementById("topic").addEventListener("change", (ev) => ev.target.form.submit());
}

document.addEventListener("DOMContentLoaded", () => {
  const on = (id, fn) => { const node = document.getElementById(id); if (node) fn(node); };
  on("jobs", initJobs);
  on("job", initJob);
  on("models", initModels);
  on("compare", initCompare);
  on("events", initEvents);
});
