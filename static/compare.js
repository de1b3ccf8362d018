/* The compare page: draw the confusion-difference heatmap from the figure the server embedded. */
(function () {
  "use strict";
  const data = document.getElementById("cm-diff-data");
  const el = document.getElementById("cm-diff");
  if (!data || !el || !window.Plotly) return;
  const fig = JSON.parse(data.textContent);
  if (!fig) return;
  window.Plotly.newPlot(el, fig.data, fig.layout, window.earmark.plotConfig({
    modeBarButtonsToRemove: ["select2d", "lasso2d"] }));
})();
