/* The compare page: draw the confusion-difference heatmap from the figure the server embedded, and
 * sort the per-class table by a click on a heading (numbers: rows without a value go last). */
(function () {
  "use strict";
  // the two pickers never name the same run: picking in one the run the other holds swaps them
  const pickA = document.getElementById("pick-a"), pickB = document.getElementById("pick-b");
  if (pickA && pickB) {
    const was = new Map([[pickA, pickA.value], [pickB, pickB.value]]);
    [[pickA, pickB], [pickB, pickA]].forEach(([mine, other]) => mine.addEventListener("change", () => {
      if (mine.value && mine.value === other.value) other.value = was.get(mine);
      was.set(pickA, pickA.value);
      was.set(pickB, pickB.value);
    }));
  }
  const data = document.getElementById("cm-diff-data");
  const el = document.getElementById("cm-diff");
  if (data && el && window.Plotly) {
    const fig = JSON.parse(data.textContent);
    if (fig) {
      window.Plotly.newPlot(el, fig.data, fig.layout, window.earmark.plotConfig({
        modeBarButtonsToRemove: ["select2d", "lasso2d"], responsive: false }));
    }
  }

  const table = document.getElementById("per-class");
  if (!table) return;
  const body = table.tBodies[0];
  table.querySelectorAll("th[data-sort]").forEach((th) => {
    th.addEventListener("click", () => {  // the whole heading; its button gives keyboard access
      const key = th.dataset.sort;
      const dir = th.getAttribute("aria-sort") === "ascending" ? "descending" : "ascending";
      table.querySelectorAll("th[data-sort]").forEach((h) => h.setAttribute("aria-sort", "none"));
      th.setAttribute("aria-sort", dir);
      const sign = dir === "ascending" ? 1 : -1;
      const value = (r) => (key === "class" ? r.dataset.class : r.dataset[key]);
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const va = value(a), vb = value(b);
        if (key === "class") return sign * va.localeCompare(vb);
        if (va === "" || vb === "") return (va === "") - (vb === "");  // missing values last
        return sign * (Number(va) - Number(vb));
      });
      rows.forEach((r) => body.appendChild(r));
    });
  });
})();
