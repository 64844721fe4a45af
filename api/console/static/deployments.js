/* The deployments page follows deploy.events through the console's event hub and re-renders (one reload) when a
   deployment step newer than the one shown is recorded: no polling. */
(function () {
  "use strict";
  var data = document.getElementById("deploy-data");
  var view = data ? JSON.parse(data.textContent) : {};
  var q = new URLSearchParams();
  if (view.after != null) q.set("after", view.after);
  var es = new EventSource("/ui/stream/deploy.events?" + q.toString());
  es.onmessage = function (ev) {
    var items = JSON.parse(ev.data);
    var newer = items.some(function (it) {
      if (!/^modelbus\.deploy\..*\.step$/.test(it.type || "")) return false;
      var st = (it.data || {}).state || {};
      var shown = (view.versions || {})[it.subject];
      return st.version != null && (shown == null || st.version > shown);
    });
    if (newer) { es.close(); window.location.reload(); }
  };
})();
