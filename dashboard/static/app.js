// warren dashboard: progressive enhancement only; every page works without it.
// On the overview, refresh the queues' counts from /api/overview (one call
// to the management API each) every few seconds while the page is visible.
(function () {
  "use strict";
  var status = document.getElementById("refreshed");
  if (!status || !window.fetch) { return; }
  var url = status.getAttribute("data-overview");
  var every = Math.max(2000, parseInt(status.getAttribute("data-every"), 10) || 2000);
  var rows = {};
  document.querySelectorAll("#queues tr[data-queue]").forEach(function (tr) {
    rows[tr.getAttribute("data-queue")] = tr;
  });
  function set(tr, field, text, bad) {
    var td = tr.querySelector('[data-field="' + field + '"]');
    if (!td) { return; }
    var a = td.querySelector("a");
    (a || td).textContent = text;
    if (a && bad !== undefined) { a.classList.toggle("bad", bad); }
  }
  function rate(r, k) { return r ? r[k].toFixed(1) : "-"; }
  function refresh() {
    if (document.hidden) { return; }
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (res) { return res.json().then(function (body) { return { ok: res.ok, body: body }; }); })
      .then(function (r) {
        if (!r.ok) { status.textContent = "Refresh failed: " + (r.body.error || "unknown error"); return; }
        r.body.queues.forEach(function (q) {
          var tr = rows[q.name];
          if (!tr || !q.exists) { return; }
          set(tr, "ready", q.ready); set(tr, "unacked", q.unacked); set(tr, "consumers", q.consumers);
          set(tr, "publish", rate(q.rates, "publish")); set(tr, "deliver", rate(q.rates, "deliver")); set(tr, "ack", rate(q.rates, "ack"));
          if (q.dead_lettered !== null) { set(tr, "dead_lettered", q.dead_lettered, q.dead_lettered > 0); }
          if (q.quarantined != null) { set(tr, "quarantined", q.quarantined); }
        });
        var total = document.getElementById("delay-total"), unr = document.getElementById("delay-unroutable");
        if (total && r.body.delay) { total.textContent = r.body.delay.total; }
        if (unr && r.body.delay) { unr.textContent = r.body.delay.unroutable; }
        status.textContent = "Updated " + new Date(r.body.read).toLocaleTimeString() + ".";
      })
      .catch(function (e) { status.textContent = "Refresh failed: " + e.message; });
  }
  setInterval(refresh, every);
})();
