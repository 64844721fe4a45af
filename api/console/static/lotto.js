/* Lotto page charts (uPlot): each machine's number shares beside the uniform 6/45 expectation and its band. */
(function () {
  "use strict";
  var view = JSON.parse(document.getElementById("lotto-data").textContent);
  var byMachine = {};
  view.machines.forEach(function (m) { byMachine[m.machine] = m; });
  var bars = uPlot.paths.bars;
  function w(el) { return Math.max(320, (el.clientWidth || 460) - 8); }
  function flat(n, v) { return new Array(n).fill(v); }
  Array.prototype.forEach.call(document.querySelectorAll("[data-chart]"), function (el) {
    var m = byMachine[el.getAttribute("data-machine")];
    if (!m) return;
    if (el.getAttribute("data-chart") === "frequency") {
      var f = m.frequency, n = f.numbers.length;
      new uPlot({
        width: w(el), height: 230, scales: { x: { time: false, range: [0.5, 45.5] }, y: { range: function (u, lo, hi) { return [0, Math.max(hi, f.band[1]) * 1.1]; } } },
        legend: { live: false },
        axes: [{ label: "number" }, { label: "share of draws", size: 60 }],
        series: [
          { label: "number" },
          { label: "observed", fill: "rgba(9,105,218,.45)", stroke: "#0969da", paths: bars({ size: [0.7, 14] }), points: { show: false } },
          { label: "6/45", stroke: "#1a7f37", width: 2, points: { show: false } },
          { label: "95 % band low", stroke: "#1a7f37", width: 1, dash: [5, 4], points: { show: false } },
          { label: "95 % band high", stroke: "#1a7f37", width: 1, dash: [5, 4], points: { show: false } },
        ],
      }, [f.numbers, f.shares, flat(n, f.expected), flat(n, f.band[0]), flat(n, f.band[1])], el);
    }
  });
})();
