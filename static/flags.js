/* The flags queue: edit and clear flags in place, import an export file.
 * Uses earmark.post (adds the X-Earmark-CSRF header) and the flag API of routes/flag_api.py. */
(function () {
  "use strict";
  const E = window.earmark;

  function row(id) { return document.querySelector('tr[data-clip="' + id + '"]'); }
  function editor(id) { return document.querySelector('tr[data-editor="' + id + '"]'); }

  /* One editor, cloned from the <template> under the row being edited (100 rows x every label
   * as <option>s would make the page several times heavier). */
  function openEditor(id) {
    const open = editor(id);
    if (open) { open.remove(); return; }
    const tr = row(id);
    const ed = document.getElementById("flag-editor").content.firstElementChild.cloneNode(true);
    ed.dataset.editor = id;
    const form = ed.querySelector("form");
    form.dataset.clip = id;
    form.elements.reason.value = tr.dataset.reason;
    form.elements.corrected_label.value = tr.dataset.corrected || "";
    form.elements.note.value = tr.dataset.note || "";
    ed.querySelector("[data-cancel]").dataset.cancel = id;
    tr.after(ed);
    form.elements.reason.focus();
  }
  function closeEditor(id) { const ed = editor(id); if (ed) ed.remove(); }

  /* every flag change on this page (Save, Clear, Undo, the c/m/x keys) comes through earmark.showFlag */
  document.addEventListener("earmark:flag", (ev) => {
    const { id, flag } = ev.detail;
    const tr = row(id);
    if (tr && flag) showRow(id, flag);
    else if (tr) { tr.classList.add("cleared"); setActions(tr, true); closeEditor(id); }
    refreshCounts().catch((e) => E.toast(e.message, true));
  });

  function showRow(id, flag) {
    const tr = row(id);
    if (!tr) return;
    tr.dataset.reason = flag.reason;
    tr.dataset.corrected = flag.corrected_label || "";
    tr.dataset.note = flag.note || "";
    tr.querySelector('[data-f="corrected"]').textContent = flag.corrected_label || "";
    tr.querySelector('[data-f="note"]').textContent = flag.note || "";
    tr.dataset.author = flag.author || "";
    tr.querySelector('[data-f="author"]').textContent = flag.author;
    const when = tr.querySelector('[data-f="when"]');
    when.textContent = "";
    const t = document.createElement("time");
    t.setAttribute("datetime", flag.updated_at || "");
    when.appendChild(t);
    E.humanTimes(when);
    tr.classList.remove("cleared");
    setActions(tr, false);
  }

  /* a cleared row keeps its place, greyed, with Undo instead of Edit and Clear */
  function setActions(tr, cleared) {
    const id = tr.dataset.clip;
    const cell = tr.querySelector("td.actions");
    cell.textContent = "";
    const button = (text, attr) => { const b = document.createElement("button"); b.type = "button"; b.textContent = text; b.setAttribute(attr, id); return b; };
    if (cleared) cell.append(button("Undo", "data-undo"));
    else cell.append(button("Edit", "data-edit"), " ", button("Clear", "data-clear"));
  }

  /* the header's and the tabs' counts, as the store has them now (this page's data set) */
  async function refreshCounts() {
    const u = new URL(E.url("api_flags"), window.location.href);
    const ds = new URL(window.location.href).searchParams.get("dataset");
    if (ds) u.searchParams.set("dataset", ds);
    u.searchParams.set("limit", "1");
    const res = await E.getJSON(u.pathname + u.search);
    document.querySelectorAll("[data-count]").forEach((el) => {
      const n = el.dataset.count === "total" ? res.counts.total : res.counts[el.dataset.count];
      if (n !== undefined) el.textContent = Number(n).toLocaleString();
    });
    document.querySelectorAll('[data-plural="total"]').forEach((el) => { el.textContent = res.counts.total === 1 ? "" : "s"; });
  }

  async function save(form) {
    const id = form.dataset.clip;
    const fd = new FormData(form);
    const flag = await E.post(E.url("flag", { id: id }), {
      reason: fd.get("reason"), corrected_label: fd.get("corrected_label") || null,
      note: fd.get("note") || "", author: E.author(),
    });
    E.showFlag(id, flag);
    closeEditor(id);
    E.toast("flag on clip " + id + " saved");
  }

  async function clear(id) {
    await E.clearFlag(id);  // earmark.showFlag(id, null): the row greys, with Undo
  }

  /* Undo a clear: the flag as it was (reason, label, note, and its author, unless that was a detector:
   * "auto" is theirs alone, so a restored detector flag is yours) */
  async function undo(id) {
    const tr = row(id);
    const author = tr.dataset.author && tr.dataset.author !== "auto" ? tr.dataset.author : E.author();
    const flag = await E.post(E.url("flag", { id: id }), {
      reason: tr.dataset.reason, corrected_label: tr.dataset.corrected || null, note: tr.dataset.note || "", author: author,
    });
    E.showFlag(id, flag);
    E.toast("flag on clip " + id + " restored");
  }

  document.addEventListener("click", (ev) => {
    const edit = ev.target.closest("[data-edit]");
    if (edit) { openEditor(edit.dataset.edit); return; }
    const cancel = ev.target.closest("[data-cancel]");
    if (cancel) { closeEditor(cancel.dataset.cancel); return; }
    const clr = ev.target.closest("[data-clear]");
    if (clr) { clear(clr.dataset.clear).catch((e) => E.toast(e.message, true)); return; }
    const und = ev.target.closest("[data-undo]");
    if (und) undo(und.dataset.undo).catch((e) => E.toast(e.message, true));
  });

  document.addEventListener("submit", (ev) => {
    const form = ev.target.closest("form.flag-edit");
    if (!form) return;
    ev.preventDefault();
    save(form).catch((e) => E.toast(e.message, true));
  });

  const imp = document.getElementById("import-form");
  if (imp) imp.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const box = document.getElementById("import-problems");
    box.hidden = true;
    box.textContent = "";
    const fd = new FormData(imp);
    fd.append("author", E.author());
    const resp = await fetch(E.url("flags_import"), {
      method: "POST", credentials: "same-origin", headers: { "X-Earmark-CSRF": "1" }, body: fd,
    });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (resp.ok) {
      E.toast("imported " + body.rows + " row(s): " + body.created + " new, " + body.updated + " updated");
      setTimeout(() => window.location.reload(), 700);
      return;
    }
    const lines = [body && body.title ? body.title : "import failed (" + resp.status + ")"];
    if (body && body.problems) body.problems.forEach((p) => lines.push("line " + p.line + ": " + p.message));
    else if (body && body.detail) lines.push(body.detail);
    box.textContent = lines.join("\n");
    box.hidden = false;
  });
})();
