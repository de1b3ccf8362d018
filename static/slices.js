// The slices page: a click anywhere on a slice's row opens its clips (the link in the row is the
// same URL, for the keyboard and for opening in a new tab).
(function () {
  "use strict";
  document.querySelectorAll("table.slices tbody tr[data-href]").forEach(function (row) {
    row.addEventListener("click", function (ev) {
      if (ev.target.closest("a") || window.getSelection().toString()) return;
      window.location.href = row.dataset.href;
    });
  });
})();
