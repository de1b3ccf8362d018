/* Overview: draw the class-distribution bar charts from the JSON embedded in the page. */
(function () {
  "use strict";
  document.querySelectorAll("section.dataset").forEach((section) => {
    const data = JSON.parse(section.querySelector("script.dist-data").textContent);
    const slots = section.querySelectorAll(".dist-chart");
    data.forEach((fig, i) => {
      if (!slots[i]) return;
      slots[i].style.height = fig.layout.height + "px";  // tall when the labels lie as rows
      Plotly.newPlot(slots[i], fig.data, fig.layout, window.earmark.plotConfig({ displayModeBar: false }));
    });
  });
})();
