/* earmark: shared browser helpers. Plain JS, no build step.
 * earmark.post(url, json) adds the X-Earmark-CSRF header every state-changing request needs.
 * Elements with data-play="<clip id>" play that clip; a .flag-form saves or clears a flag;
 * rows marked data-clip (the clip list) or a [data-current-clip] element (the clip page) get the
 * keyboard: j/k next/previous, space play, c cut-off, m mislabeled, x clear. */
(function () {
  "use strict";
  const AUTHOR_KEY = "earmark.author";

  function toast(msg, isError) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = msg;
    el.className = "toast" + (isError ? " error" : "");
    el.hidden = false;
    clearTimeout(toast._t);
    toast._t = setTimeout(() => { el.hidden = true; }, isError ? 6000 : 2500);
  }

  async function post(url, data) {
    const resp = await fetch(url, {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-Earmark-CSRF": "1" },
      body: JSON.stringify(data || {}),
    });
    let body = null;
    try { body = await resp.json(); } catch (e) { body = null; }
    if (!resp.ok) {
      const msg = body && body.title ? body.title + (body.detail ? ": " + body.detail : "") : "request failed (" + resp.status + ")";
      throw new Error(msg);
    }
    return body;
  }

  async function getJSON(url) {
    const resp = await fetch(url, { credentials: "same-origin" });
    const body = await resp.json();
    if (!resp.ok) throw new Error(body && body.title ? body.title : "request failed (" + resp.status + ")");
    return body;
  }

  function author() {
    try { return (localStorage.getItem(AUTHOR_KEY) || "").trim() || "anonymous"; } catch (e) { return "anonymous"; }
  }

  /* Every URL comes from the server (app.web.urls.js_templates, in base.html): url("audio", {id: 7})
   * fills {id} and {run} of the named template; nothing here spells out a path. */
  let urlTemplates = null;
  function url(name, params) {
    if (!urlTemplates) {
      const el = document.getElementById("earmark-urls");
      try { urlTemplates = el ? JSON.parse(el.textContent) : {}; } catch (e) { urlTemplates = {}; }
    }
    const t = urlTemplates[name];
    if (!t) throw new Error("no URL named " + name);
    const p = params || {};
    return t.replace(/\{(\w+)\}/g, (_, k) => encodeURIComponent(p[k] == null ? "" : p[k]));
  }

  /* one audio element for the whole page */
  const player = new Audio();
  player.preload = "none";
  let playingId = null;
  function markPlaying() {
    document.querySelectorAll("button.play").forEach((b) => {
      b.classList.toggle("playing", !player.paused && b.dataset.play === String(playingId));
    });
  }
  ["play", "pause", "ended"].forEach((ev) => player.addEventListener(ev, markPlaying));
  function play(clipId) {
    if (playingId === clipId && !player.paused) { player.pause(); return; }
    playingId = clipId;
    player.src = url("audio", { id: clipId });
    player.play().catch((e) => toast("cannot play: " + e.message, true));
  }

  /* <time datetime="ISO"> elements: local date and time, and how long ago ("3 minutes ago");
   * a time without an offset is UTC (the store's clock). */
  const rtf = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  function ago(date) {
    const s = (date.getTime() - Date.now()) / 1000;
    if (Math.abs(s) < 60) return "under a minute ago";
    const units = [["year", 31536000], ["month", 2592000], ["week", 604800], ["day", 86400], ["hour", 3600], ["minute", 60]];
    for (const [unit, secs] of units) {
      if (Math.abs(s) >= secs) {
        const n = Math.round(s / secs);
        return rtf ? rtf.format(n, unit) : Math.abs(n) + " " + unit + (Math.abs(n) === 1 ? "" : "s") + " ago";
      }
    }
    return "";
  }
  function humanTimes(root) {
    (root || document).querySelectorAll("time[datetime]").forEach((el) => {
      let iso = el.getAttribute("datetime");
      if (!iso) return;
      if (!/(Z|[+-]\d\d:?\d\d)$/.test(iso)) iso += "Z";
      const date = new Date(iso);
      if (isNaN(date.getTime())) return;
      el.textContent = date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" }) + " (" + ago(date) + ")";
      el.title = date.toString();
    });
  }

  /* a box marked data-scroll-hint that is wider than the window says so (and which way to scroll) */
  function scrollHints() {
    document.querySelectorAll("[data-scroll-hint]").forEach((box) => {
      let hint = box.previousElementSibling;
      if (!hint || !hint.classList.contains("scroll-hint")) {
        hint = document.createElement("p");
        hint.className = "scroll-hint muted small";
        box.parentNode.insertBefore(hint, box);
      }
      const wide = box.scrollWidth > box.clientWidth + 1, tall = box.scrollHeight > box.clientHeight + 1;
      hint.hidden = !(wide || tall);
      hint.textContent = (box.dataset.scrollHint || "This table") + " scrolls " +
        (wide && tall ? "sideways and down" : wide ? "sideways" : "down") + " inside its box; its headers stay in view.";
    });
  }
  window.addEventListener("resize", scrollHints);

  /* plotly config for every chart: nothing may leave the machine (no "Share chart", no logo link) */
  const LOCAL_ONLY = { displaylogo: false, showSendToCloud: false, plotlyServerURL: "", responsive: true };
  function plotConfig(extra) { return Object.assign({}, extra || {}, LOCAL_ONLY); }

  function runParam() {
    const r = document.body.dataset.run;
    return r ? "?run=" + encodeURIComponent(r) : "";
  }

  async function setFlag(clipId, reason, correctedLabel, note) {
    const flag = await post(url("flag", { id: clipId }),
      { reason: reason, corrected_label: correctedLabel || null, note: note || "", author: author() });
    showFlag(clipId, flag);
    toast("clip " + clipId + " flagged: " + reason.replace("_", " ") + (correctedLabel ? " → " + correctedLabel : ""));
    return flag;
  }

  async function clearFlag(clipId) {
    await post(url("flag_clear", { id: clipId }), {});
    showFlag(clipId, null);
    toast("flag cleared on clip " + clipId);
  }

  /* a clip's flag shown everywhere the page has it: badges, and the clip's flag form (reason, label, note) */
  function showFlag(clipId, flag) {
    document.querySelectorAll('form.flag-form[data-clip="' + clipId + '"]').forEach((form) => {
      form.querySelectorAll("input[name=reason]").forEach((r) => { r.checked = !!flag && r.value === flag.reason; });
      const sel = form.querySelector("select[name=corrected_label]");
      if (sel) sel.value = flag && flag.corrected_label ? flag.corrected_label : "";
      const note = form.querySelector("input[name=note]");
      if (note) note.value = flag && flag.note ? flag.note : "";
    });
    document.querySelectorAll('[data-flag-cell="' + clipId + '"]').forEach((cell) => {
      cell.textContent = "";
      if (!flag) return;
      const b = document.createElement("span");
      b.className = "badge flag flag-" + flag.reason;
      b.textContent = flag.reason.replace("_", " ") + (flag.corrected_label ? " → " + flag.corrected_label : "");
      b.title = flag.note || "";
      cell.appendChild(b);
    });
    // pages that show more of a flag (the Flags page: its row, its counts) listen for this
    document.dispatchEvent(new CustomEvent("earmark:flag", { detail: { id: String(clipId), flag: flag } }));
  }

  /* The flag vocabulary (reasons, special labels, keyboard shortcuts) as the server sends it
   * (app.flags.vocabulary, in base.html): no copy of it is typed out here. */
  function vocab() {
    const el = document.getElementById("flag-vocab");
    try { return el ? JSON.parse(el.textContent) : { reasons: [], special_labels: [], shortcuts: {} }; }
    catch (e) { return { reasons: [], special_labels: [], shortcuts: {} }; }
  }

  function labels() {
    const el = document.getElementById("labels-data");
    try { return el ? JSON.parse(el.textContent) : []; } catch (e) { return []; }
  }

  /* The label picker (m): an in-page dialog over the correctable labels, searched case-insensitively,
   * pre-filled with the suggested label so one key (Enter) accepts it. Resolves to a label or null. */
  function matchLabels(known, text) {
    const q = text.trim().toLowerCase();
    if (!q) return known.slice();
    const starts = known.filter((l) => l.toLowerCase().startsWith(q));
    return starts.concat(known.filter((l) => starts.indexOf(l) < 0 && l.toLowerCase().indexOf(q) >= 0));
  }
  function askLabel(suggested, title) {
    const known = labels();
    return new Promise((resolve) => {
      const dlg = document.createElement("dialog");
      dlg.id = "label-picker";
      dlg.className = "label-picker";
      dlg.innerHTML = "<form method='dialog'><h3></h3><input type='text' class='lp-search' autocomplete='off' spellcheck='false' " +
        "aria-label='search the labels' placeholder='type to search the labels'><ul class='lp-list' role='listbox'></ul>" +
        "<p class='muted small'><kbd>Enter</kbd> accept · <kbd>↑</kbd>/<kbd>↓</kbd> choose · <kbd>Esc</kbd> cancel</p></form>";
      dlg.querySelector("h3").textContent = title || "Correct label";
      const input = dlg.querySelector("input"), list = dlg.querySelector("ul");
      let shown = [], active = 0, done = false;
      function finish(value) {
        if (done) return;
        done = true;
        dlg.close();
        dlg.remove();
        resolve(value);
      }
      function render() {
        shown = matchLabels(known, input.value);
        active = Math.max(0, Math.min(active, shown.length - 1));
        list.innerHTML = "";
        shown.forEach((l, i) => {
          const li = document.createElement("li");
          li.setAttribute("role", "option");
          li.dataset.label = l;
          li.textContent = l + (l === suggested ? "  (suggested)" : "");
          if (i === active) { li.className = "active"; li.setAttribute("aria-selected", "true"); }
          li.addEventListener("mousedown", (ev) => { ev.preventDefault(); finish(l); });
          list.appendChild(li);
        });
        if (!shown.length) { const li = document.createElement("li"); li.className = "muted"; li.textContent = "no label matches"; list.appendChild(li); }
        const a = list.querySelector("li.active");
        if (a) a.scrollIntoView({ block: "nearest" });
      }
      input.addEventListener("input", () => { active = 0; render(); });
      input.addEventListener("keydown", (ev) => {
        if (ev.key === "ArrowDown" || ev.key === "ArrowUp") { active += ev.key === "ArrowDown" ? 1 : -1; render(); ev.preventDefault(); }
        else if (ev.key === "Enter") {
          ev.preventDefault();
          if (shown.length) finish(shown[active]); else toast("no label matches " + input.value.trim(), true);
        }
      });
      dlg.addEventListener("cancel", (ev) => { ev.preventDefault(); finish(null); });
      dlg.addEventListener("click", (ev) => { if (ev.target === dlg) finish(null); });  // a click outside the box
      document.body.appendChild(dlg);
      input.value = suggested && known.indexOf(suggested) >= 0 ? suggested : "";
      render();
      dlg.showModal();
      input.focus();
      input.select();  // typing replaces the suggestion
    });
  }

  /* the label a correction starts from: the clip page's suggestion, or a disagreeing row's prediction */
  function suggestedFor(clipId) {
    const page = document.querySelector("[data-current-clip]");
    if (page && page.dataset.currentClip === String(clipId)) return page.dataset.suggested || "";
    const row = document.querySelector('tr[data-clip="' + clipId + '"]');
    return row ? row.dataset.suggested || "" : "";
  }

  /* keyboard: the list (rows) or the clip page (one clip) */
  function rows() { return Array.from(document.querySelectorAll("tr[data-clip]")); }
  let cursor = -1;
  function focusRow(i) {
    const rs = rows();
    if (!rs.length) return;
    cursor = Math.max(0, Math.min(rs.length - 1, i));
    rs.forEach((r, j) => r.classList.toggle("current", j === cursor));
    rs[cursor].scrollIntoView({ block: "nearest" });
  }
  function currentClip() {
    const page = document.querySelector("[data-current-clip]");
    if (page) return page.dataset.currentClip;
    const rs = rows();
    if (!rs.length) return null;
    if (cursor < 0) focusRow(0);
    return rs[cursor].dataset.clip;
  }
  function go(delta) {
    const page = document.querySelector("[data-current-clip]");
    if (page) {
      const href = delta > 0 ? page.dataset.next : page.dataset.prev;
      if (href) window.location.href = href;
      return;
    }
    focusRow(cursor + delta);
  }

  /* a field the user types into: the shortcuts stay out of its way (a checkbox, a radio, a button or
   * the audio player do not count: the keys keep working there) */
  const NOT_TYPED = /^(checkbox|radio|button|submit|reset|range|color|file|image)$/;
  function typing(t) {
    if (!t || !t.tagName) return false;
    if (t.isContentEditable || t.tagName === "TEXTAREA" || t.tagName === "SELECT") return true;
    return t.tagName === "INPUT" && !NOT_TYPED.test((t.type || "text").toLowerCase());
  }

  function onKey(ev) {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (typing(t) || document.querySelector("dialog[open]")) return;
    const hasClips = document.querySelector("[data-current-clip]") || rows().length;
    if (!hasClips) return;
    const k = ev.key;
    if (k === "j") { go(1); } else if (k === "k") { go(-1); }
    else if (k === " ") {
      if (/^(AUDIO|VIDEO)$/.test(t.tagName)) return;  // the focused player toggles itself (no double toggle)
      const own = document.getElementById("clip-audio");  // the clip page's player
      if (own) { if (own.paused) own.play().catch((e) => toast("cannot play: " + e.message, true)); else own.pause(); }
      else { const id = currentClip(); if (id) play(id); }
    }
    else if (k === "c") { const id = currentClip(); if (id) setFlag(id, vocab().shortcuts.c).catch((e) => toast(e.message, true)); }
    else if (k === "m") {
      const id = currentClip(); if (!id) return;
      askLabel(suggestedFor(id), "Correct label of clip #" + id).then((label) => {
        if (label) return setFlag(id, vocab().shortcuts.m, label);
      }).catch((e) => toast(e.message, true));
    }
    else if (k === "x") { const id = currentClip(); if (id) clearFlag(id).catch((e) => toast(e.message, true)); }
    else return;
    ev.preventDefault();
  }

  function wireFlagForms(root) {
    root.querySelectorAll("form.flag-form[data-clip]").forEach((form) => {
      if (form.dataset.wired) return;
      form.dataset.wired = "1";
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        const fd = new FormData(form);
        const reason = fd.get("reason");
        if (!reason) { toast("pick a reason first", true); return; }
        setFlag(form.dataset.clip, reason, fd.get("corrected_label"), fd.get("note")).catch((e) => toast(e.message, true));
      });
      const clear = form.querySelector(".clear-flag");
      if (clear) clear.addEventListener("click", () => {
        clearFlag(form.dataset.clip).catch((e) => toast(e.message, true));
      });
    });
  }

  document.addEventListener("click", (ev) => {
    const btn = ev.target.closest("[data-play]");
    if (btn) { ev.preventDefault(); play(btn.dataset.play); }
    const row = ev.target.closest("tr[data-clip]");
    if (row) focusRow(rows().indexOf(row));
  });

  /* The run picker keeps the page's state: every query parameter (split, normalisation, filters, sort,
   * page) and the scroll position; only what belongs to one run goes (a finding, compare's a and b). */
  const SCROLL_KEY = "earmark.scroll";
  const RUN_BOUND = ["finding", "a", "b"];
  function wireRunPicker() {
    const sel = document.getElementById("run-picker");
    if (!sel) return;
    sel.addEventListener("change", () => {
      const u = new URL(window.location.href);
      RUN_BOUND.forEach((k) => u.searchParams.delete(k));
      u.searchParams.set("run", sel.value);
      try { sessionStorage.setItem(SCROLL_KEY, JSON.stringify({ path: u.pathname, y: window.scrollY })); } catch (e) { /* private mode */ }
      window.location.href = u.toString();
    });
  }
  function restoreScroll() {
    let saved = null;
    try { saved = JSON.parse(sessionStorage.getItem(SCROLL_KEY) || "null"); sessionStorage.removeItem(SCROLL_KEY); } catch (e) { return; }
    if (saved && saved.path === window.location.pathname && saved.y > 0) window.scrollTo(0, saved.y);
  }
  window.addEventListener("load", restoreScroll);

  document.addEventListener("DOMContentLoaded", () => {
    wireRunPicker();
    const input = document.getElementById("author-name");
    if (input) {
      try { input.value = localStorage.getItem(AUTHOR_KEY) || ""; } catch (e) { /* private mode */ }
      input.addEventListener("change", () => { try { localStorage.setItem(AUTHOR_KEY, input.value.trim()); } catch (e) { /* ignore */ } });
    }
    document.querySelectorAll("form[data-csrf-form]").forEach((form) => {
      form.addEventListener("submit", (ev) => {
        ev.preventDefault();
        post(form.action, {}).then(() => { window.location.href = url("overview"); }).catch((e) => toast(e.message, true));
      });
    });
    wireFlagForms(document);
    humanTimes(document);
    scrollHints();
    document.addEventListener("keydown", onKey);
  });

  /* A bulk flag (the cloud's "Flag selected", the Issues page's "Flag all"): ask the server first what it
   * would do (dry_run), confirm with the count, and never replace a flag a person wrote unless the user
   * says so in a second question. Resolves to the server's answer, or null when the user cancels. */
  async function bulkFlag(target, body, what) {
    const plan = await post(target, Object.assign({}, body, { dry_run: true }));
    const reason = String(plan.reason || body.reason || "").replace(/_/g, " ");
    const total = plan.flagged + plan.kept;
    let msg = "Flag " + total.toLocaleString() + " " + what + " as " + reason + "?";
    if (plan.kept) msg += "\n\n" + plan.kept.toLocaleString() + " of them already have a flag a person wrote.";
    if (!window.confirm(msg)) return null;
    let overwrite = false;
    if (plan.kept) {
      overwrite = window.confirm("Replace the " + plan.kept.toLocaleString() + " flag(s) people wrote?\n\n" +
        "OK: replace them. Cancel: keep them and flag the other " + plan.flagged.toLocaleString() + ".");
    }
    const res = await post(target, Object.assign({}, body, { overwrite_people: overwrite }));
    toast("flagged " + res.flagged.toLocaleString() + " " + what + " as " + reason +
      (res.kept ? "; kept " + res.kept.toLocaleString() + " flag(s) people wrote" : "") +
      (res.replaced ? "; replaced " + res.replaced.toLocaleString() + " written by people" : ""));
    return res;
  }

  window.earmark = { post, getJSON, toast, author, play, player, setFlag, clearFlag, showFlag, labels, vocab, url,
    askLabel, runParam, wireFlagForms, plotConfig, humanTimes, bulkFlag };
})();
