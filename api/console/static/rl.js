/* An RL task's episode reward curve (uPlot) with the random and greedy baselines, live from rl.episodes through
   the console's event hub (no polling); the page reloads once when the task finishes, to show its evaluation. */
(function () {
  "use strict";
  var view = JSON.parse(document.getElementById("rl-data").textContent);
  var box = document.getElementById("reward-chart");
  var ep = view.series.episode.slice(), reward = view.series.reward.slice();
  var seen = {};
  ep.forEach(function (e) { seen[e] = true; });
  function data() {
    var n = ep.length;
    return [ep, reward, new Array(n).fill(view.baselines.random), new Array(n).fill(view.baselines.greedy)];
  }
  var plot = new uPlot({
    width: Math.max(320, box.clientWidth - 16), height: 320,
    scales: { x: { time: false } }, legend: { live: false },
    axes: [{ label: "episode" }, { label: "reward per episode (day)", size: 70 }],
    series: [
      { label: "episode" },
      { label: "agent", stroke: "#0969da", width: 1.5, points: { show: false } },
      { label: "random", stroke: "#cf222e", width: 1.5, dash: [6, 4], points: { show: false } },
      { label: "greedy", stroke: "#1a7f37", width: 1.5, dash: [6, 4], points: { show: false } },
    ],
  }, data(), box);
  window.rlPage = { view: view, plot: plot };

  function follow(topic, params, onItems) {
    var q = new URLSearchParams(params);
    var after = (view.live || {})[topic];
    if (after != null) q.set("after", after);
    var es = new EventSource("/ui/stream/" + topic + "?" + q.toString());
    es.onmessage = function (ev) { var items = JSON.parse(ev.data); if (items.length) onItems(items); };
    return es;
  }
  follow("rl.episodes", { subject: view.task_id }, function (items) {
    var added = false;
    items.forEach(function (it) {
      var d = it.data || {};
      if (d.job_id !== view.task_id || d.attempt !== view.attempt || seen[d.episode + 1]) return;
      seen[d.episode + 1] = true;
      ep.push(d.episode + 1); reward.push(d.reward); added = true;
    });
    if (!added) return;
    var order = ep.map(function (e, i) { return [e, reward[i]]; }).sort(function (a, b) { return a[0] - b[0]; });
    ep = order.map(function (p) { return p[0]; }); reward = order.map(function (p) { return p[1]; });
    plot.setData(data());
    document.getElementById("episode-count").textContent = ep.length;
  });
  if (["completed", "failed", "cancelled"].indexOf(view.status) < 0) {
    follow("train.events", { subject: view.task_id }, function (items) {
      var done = items.some(function (it) { return /\.(completed|failed|cancelled)$/.test(it.type || ""); });
      if (done) window.location.reload();
    });
  }
})();
