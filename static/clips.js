/* The clip list: pick clips with the checkboxes (or every clip on the page) and flag them in one go
 * through earmark.bulkFlag (it asks the server what it would do, confirms with the count, and keeps
 * the flags people wrote unless the user says otherwise); the flag column then shows the store's flags. */
(function () {
  "use strict";
  const E = window.earmark;
  const bar = document.getElementById("bulk-clips");
  const all = document.getElementById("select-page");
  if (!bar || !all) return;
  const boxes = () => Array.from(document.querySelectorAll("tr[data-clip] input.pick"));
  const picked = () => boxes().filter((b) => b.checked).map((b) => Number(b.value));

  function update() {
    const n = picked().length, total = boxes().length;
    document.getElementById("bulk-count").textContent = n.toLocaleString();
    bar.hidden = n === 0;
    all.checked = n > 0 && n === total;
    all.indeterminate = n > 0 && n < total;
    boxes().forEach((b) => b.closest("tr").classList.toggle("picked", b.checked));
  }
  all.addEventListener("change", () => { boxes().forEach((b) => { b.checked = all.checked; }); update(); });
  document.addEventListener("change", (ev) => { if (ev.target.matches && ev.target.matches("input.pick")) update(); });
  document.getElementById("bulk-none").addEventListener("click", () => { boxes().forEach((b) => { b.checked = false; }); update(); });

  bar.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const ids = picked();
    const fd = new FormData(bar);
    if (!ids.length) return;
    if (!fd.get("reason")) { E.toast("pick a reason first", true); return; }
    const body = { clip_ids: ids, reason: fd.get("reason"), corrected_label: fd.get("corrected_label") || null,
      note: fd.get("note") || "", author: E.author() };
    try {
      const res = await E.bulkFlag(E.url("flags_bulk"), body, "selected clips");
      if (!res) return;
      const fresh = await E.getJSON(E.url("api_clips_by_id", { run: document.body.dataset.run, ids: ids.join(",") }));
      fresh.items.forEach((c) => E.showFlag(c.id, c.flag));
    } catch (e) { E.toast(e.message, true); }
  });
  update();
})();
