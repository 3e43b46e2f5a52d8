// Bastion's dashboard: draw plotly charts from JSON the server embedded in the page.
//
//   <div id="latency" class="chart"></div>
//   <script type="application/json" data-chart="latency">{"data": [...], "layout": {...}}</script>
//
// No inline script (the Content-Security-Policy allows only this server's files): a
// page passes data, never code. Pages with charts load /ui/static/plotly.min.js first.
(function () {
  "use strict";

  var BASE_LAYOUT = {
    margin: { l: 48, r: 16, t: 32, b: 40 },
    paper_bgcolor: "rgba(0,0,0,0)",
    plot_bgcolor: "rgba(0,0,0,0)",
    font: { family: "system-ui, sans-serif", size: 12 },
  };

  function merge(base, extra) {
    var out = {};
    Object.keys(base).forEach(function (k) { out[k] = base[k]; });
    Object.keys(extra || {}).forEach(function (k) { out[k] = extra[k]; });
    return out;
  }

  function draw(spec) {
    var target = document.getElementById(spec.getAttribute("data-chart"));
    if (!target) { return; }
    if (!window.Plotly) {
      target.textContent = "Charts need /ui/static/plotly.min.js.";
      return;
    }
    var chart = JSON.parse(spec.textContent);
    window.Plotly.newPlot(
      target,
      chart.data || [],
      merge(BASE_LAYOUT, chart.layout),
      // No mode bar: it styles itself through a <style> element of its own, which
      // the page's Content-Security-Policy refuses.
      { displaylogo: false, responsive: true, displayModeBar: false }
    );
    target.setAttribute("data-drawn", "true");
  }

  function drawAll() {
    var specs = document.querySelectorAll('script[type="application/json"][data-chart]');
    Array.prototype.forEach.call(specs, draw);
  }

  // Buttons that ask before they act (revoke a key): data-confirm="question".
  function confirmations() {
    document.addEventListener("submit", function (event) {
      var button = event.submitter;
      var form = event.target;
      var question = (button && button.getAttribute("data-confirm")) ||
        (form && form.getAttribute && form.getAttribute("data-confirm"));
      if (question && !window.confirm(question)) { event.preventDefault(); }
    });
  }

  window.Bastion = { drawCharts: drawAll };
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawAll);
  } else {
    drawAll();
  }
  confirmations();
})();
