/* Embedding cloud: decode the binary point columns, draw them with plotly scattergl (WebGL),
 * colour by a column, play on click, list and bulk-flag a lasso/box selection. */
(function () {
  "use strict";
  const cfg = JSON.parse(document.getElementById("cloud-config").textContent);
  const el = document.getElementById("cloud");
  const PALETTE = ["#3b5bdb", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0c8599", "#e67700", "#5c940d",
    "#a61e4d", "#1864ab", "#d9480f", "#087f5b", "#862e9c", "#364fc7", "#f08c00", "#495057", "#0b7285", "#c92a2a",
    "#66a80f", "#9c36b5", "#1971c2", "#f76707", "#2f9e44", "#e64980", "#5f3dc4", "#15aabf", "#fab005", "#82c91e",
    "#be4bdb", "#4263eb", "#ff922b", "#40c057", "#f06595", "#845ef7", "#22b8cf", "#ffd43b", "#94d82d"];
  // n distinct colours: the palette while it lasts, else hues spread by the golden angle at three
  // lightness levels (35+ classes never share a colour)
  function distinct(k, n) {
    if (n <= PALETTE.length) return PALETTE[k % PALETTE.length];
    const hue = (k * 137.508) % 360, light = [42, 58, 32][k % 3], sat = [70, 60, 80][Math.floor(k / 3) % 3];
    return "hsl(" + hue.toFixed(1) + "," + sat + "%," + light + "%)";
  }
  const FLAG_COLORS = ["#ced4da", "#7048e8", "#e03131", "#f08c00", "#0c8599", "#495057", "#868e96"];
  const SPLIT_COLORS = ["#3b5bdb", "#e8590c", "#2b8a3e"];
  let meta = null, cols = null, shown = null, traces = [], selected = [];
  const highlight = cfg.highlight ? new Set(cfg.highlight) : null;
  // colour by a metadata column, a signal stat or the speaker: /api/cloud/column, decoded once each
  const extra = {};
  function isColumn(c) { return c.startsWith("meta.") || c.startsWith("stat.") || c === "speaker"; }
  async function loadColumn(name) {
    if (extra[name]) return extra[name];
    const u = new URL(cfg.column_url, window.location.href);
    u.searchParams.set("name", name);
    const col = await earmark.getJSON(u.pathname + u.search);
    const bytes = Uint8Array.from(atob(col.data), (ch) => ch.charCodeAt(0));
    col.codes = col.dtype === "u2" ? new Uint16Array(bytes.buffer) : bytes;
    extra[name] = col;
    return col;
  }
  function columnValue(col, i) { return col.range[0] + ((col.codes[i] - 1) / 65534) * (col.range[1] - col.range[0]); }

  function decode(buf) {
    const n = meta.n, out = {};
    meta.columns.forEach((c) => {
      const T = { u1: Uint8Array, u2: Uint16Array, u4: Uint32Array }[c.dtype];
      out[c.name] = new T(buf, c.offset, n);
    });
    const x = new Float32Array(n), y = new Float32Array(n);
    const [x0, x1] = meta.x_range, [y0, y1] = meta.y_range;
    for (let i = 0; i < n; i++) {
      x[i] = x0 + (out.x[i] / 65535) * (x1 - x0);
      y[i] = y0 + (out.y[i] / 65535) * (y1 - y0);
    }
    out.fx = x; out.fy = y;
    return out;
  }

  // plotly reads a subset of HTML in hover text and legend names: names from the data go in escaped
  function plain(s) { return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;"); }
  let safeVocab = [];
  function label(i) { return safeVocab[cols.target[i]]; }
  function pred(i) { return safeVocab[cols.pred[i]]; }

  function visibleIndices() {
    const idx = [];
    for (let i = 0; i < meta.n; i++) {
      if (cfg.disagree && cols.agree[i]) continue;
      idx.push(i);
    }
    return idx;
  }

  function categorical(idx, keyFn, names, colors, order) {
    const groups = new Map();
    idx.forEach((i) => { const k = keyFn(i); if (!groups.has(k)) groups.set(k, []); groups.get(k).push(i); });
    const keys = Array.from(groups.keys()).sort((a, b) => (order ? order(a, b) : a - b));
    return keys.map((k) => ({ name: names(k), idx: groups.get(k), color: colors(k) }));
  }

  function buildGroups(idx) {
    const c = cfg.color;
    if (isColumn(c)) {
      const col = extra[c];
      if (col.kind === "number") return null;
      const k = col.names.length;
      return categorical(idx, (i) => col.codes[i], (v) => (v === 0 ? "no value" : v > k ? "other" : plain(col.names[v - 1])),
        (v) => (v === 0 ? "#ced4da" : v > k ? "#868e96" : distinct(v - 1, k)));
    }
    if (c === "agreement") {
      return categorical(idx, (i) => cols.agree[i], (k) => (k ? "agrees with label" : "disagrees"),
        (k) => (k ? "rgba(59,91,219,0.35)" : "#e03131"), (a, b) => b - a);
    }
    if (c === "label" || c === "pred") {
      const col = c === "label" ? cols.target : cols.pred;
      return categorical(idx, (i) => col[i], (k) => safeVocab[k], (k) => distinct(k, safeVocab.length));
    }
    if (c === "split") return categorical(idx, (i) => cols.split[i], (k) => meta.splits[k], (k) => SPLIT_COLORS[k % 3]);
    if (c === "flag") {
      return categorical(idx, (i) => cols.flag[i], (k) => (k ? (meta.flag_reasons[k - 1] || "other").replace("_", " ") : "not flagged"),
        (k) => FLAG_COLORS[k % FLAG_COLORS.length]);
    }
    return null; // continuous
  }

  function hoverText(idx) {
    return idx.map((i) => "#" + cols.clip_id[i] + "  " + label(i) + " → " + pred(i) +
      (cols.agree[i] ? "" : "  ✗") + "<br>conf " + (cols.confidence[i] / 255).toFixed(2));
  }

  function draw() {
    const idx = visibleIndices();
    const groups = buildGroups(idx);
    const size = meta.n > 50000 ? 3 : meta.n > 5000 ? 4 : 6;
    traces = [];
    const data = [];
    if (groups) {
      groups.forEach((g) => {
        traces.push(g.idx);
        data.push({ type: "scattergl", mode: "markers", name: g.name + " (" + g.idx.length.toLocaleString() + ")",
          x: g.idx.map((i) => cols.fx[i]), y: g.idx.map((i) => cols.fy[i]), text: hoverText(g.idx),
          hoverinfo: "text", marker: { size: size, color: g.color } });
      });
    } else if (isColumn(cfg.color)) {
      const col = extra[cfg.color];
      const ok = idx.filter((i) => col.codes[i] > 0), none = idx.filter((i) => col.codes[i] === 0);
      const title = cfg.color.replace(/^(meta|stat)\./, "");
      traces.push(ok);
      data.push({ type: "scattergl", mode: "markers", name: plain(title), x: ok.map((i) => cols.fx[i]),
        y: ok.map((i) => cols.fy[i]), text: hoverText(ok).map((t, j) => t + "<br>" + plain(title) + " " + columnValue(col, ok[j]).toPrecision(4)),
        hoverinfo: "text", showlegend: false,
        marker: { size: size, color: ok.map((i) => columnValue(col, i)), colorscale: "Viridis", showscale: true,
          colorbar: { title: { text: plain(title) }, thickness: 12 } } });
      if (none.length) {
        traces.push(none);
        data.push({ type: "scattergl", mode: "markers", name: "no value (" + none.length.toLocaleString() + ")",
          x: none.map((i) => cols.fx[i]), y: none.map((i) => cols.fy[i]), text: hoverText(none), hoverinfo: "text",
          marker: { size: size, color: "#ced4da" } });
      }
    } else {
      const c = cfg.color;
      const col = { confidence: cols.confidence, loss: cols.loss, cutoff: cols.cutoff }[c];
      const scale = c === "loss" ? meta.loss_max : 1;
      traces.push(idx);
      data.push({ type: "scattergl", mode: "markers", name: c, x: idx.map((i) => cols.fx[i]),
        y: idx.map((i) => cols.fy[i]), text: hoverText(idx), hoverinfo: "text", showlegend: false,
        marker: { size: size, color: idx.map((i) => (col[i] / 255) * scale), colorscale: c === "confidence" ? "Viridis" : "YlOrRd",
          reversescale: c !== "confidence", showscale: true, colorbar: { title: { text: c === "cutoff" ? "cut-off score" : c }, thickness: 12 } } });
    }
    if (highlight) {
      const hi = idx.filter((i) => highlight.has(cols.clip_id[i]));
      traces.push(hi);
      data.push({ type: "scattergl", mode: "markers", name: "issue (" + hi.length.toLocaleString() + ")",
        x: hi.map((i) => cols.fx[i]), y: hi.map((i) => cols.fy[i]), text: hoverText(hi), hoverinfo: "text",
        marker: { size: size + 3, color: "rgba(0,0,0,0)", line: { color: "#111", width: 1.2 } } });
    }
    shown = idx;
    document.getElementById("cloud-count").textContent = idx.length.toLocaleString() + " of " + meta.n.toLocaleString() + " clips shown" +
      (meta.n_unprojected ? " (" + meta.n_unprojected + " without a projection)" : "");
    // the modebar sits in the top margin, above the plot; the legend starts below it
    const layout = { dragmode: "lasso", hovermode: "closest", margin: { l: 30, r: 10, t: 34, b: 30 },
      legend: data.length > 4 ? { itemsizing: "constant", x: 1.01, xanchor: "left", y: 1, yanchor: "top" }
        : { itemsizing: "constant", bgcolor: "rgba(255,255,255,0.85)", x: 0, y: 1, yanchor: "top" },
      annotations: clusterNotes(),
      xaxis: { showgrid: false, zeroline: false, showticklabels: false }, yaxis: { showgrid: false, zeroline: false, showticklabels: false },
      plot_bgcolor: "#fff", paper_bgcolor: "#fff", uirevision: "cloud",
      font: { family: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12 } };
    Plotly.react(el, data, layout, { responsive: true, displaylogo: false, modeBarButtonsToRemove: ["toImage"] });
  }

  /* each cluster finding (earmark analyze) written at the median of its clips: its rank, and its
   * description on hover */
  function clusterNotes() {
    return (cfg.clusters || []).map((c) => ({
      x: c.x, y: c.y, xref: "x", yref: "y", showarrow: false, text: "<b>C" + c.rank + "</b>",
      hovertext: plain("#" + c.rank + " " + c.title + " (" + c.n + " clips)"), captureevents: false,
      font: { size: 12, color: "#111" }, bgcolor: "rgba(255,255,255,0.8)", bordercolor: "#495057", borderwidth: 1, borderpad: 2,
    }));
  }

  function pointsToClips(points) {
    const ids = [];
    (points || []).forEach((p) => {
      const rows = traces[p.curveNumber];
      if (rows && rows[p.pointIndex] !== undefined) ids.push(cols.clip_id[rows[p.pointIndex]]);
    });
    return Array.from(new Set(ids));
  }

  function esc(s) { const d = document.createElement("div"); d.textContent = s == null ? "" : String(s); return d.innerHTML; }

  /* a score's link to its guide entry, with its tooltip: a copy of the one the page rendered (#color-help) */
  function termLink(anchor, text) {
    const a = document.querySelector("#color-help a[href$='#" + anchor + "']");
    if (!a) return esc(text);
    const link = a.cloneNode(true);
    link.textContent = text;
    return link.outerHTML;
  }
  function showColorHelp() {
    document.querySelectorAll("[data-color-help]").forEach((e) => { e.hidden = e.dataset.colorHelp !== cfg.color; });
  }

  async function showClip(id) {
    earmark.play(String(id));
    const box = document.getElementById("clip-detail");
    try {
      const c = await earmark.getJSON(earmark.url("api_clip", { id: id, run: cfg.run_id }));
      const page = esc(earmark.url("clip_page", { id: id, run: cfg.run_id }));
      box.innerHTML = "<h3>Clip <a href='" + page + "'>#" + id + "</a></h3>" +
        "<img class='spectro large' alt='spectrogram' src='" + esc(c.spectrogram_url) + "'>" +
        "<dl class='kv small'><dt>label</dt><dd>" + esc(c.target) + "</dd><dt>prediction</dt><dd>" + esc(c.pred) +
        (c.agree ? "" : " <span class='badge bad'>disagrees</span>") + "</dd><dt>" + termLink("confidence", "confidence") + "</dt><dd>" + (c.confidence ?? 0).toFixed(3) +
        "</dd><dt>" + termLink("loss", "loss") + "</dt><dd>" + (c.loss ?? 0).toFixed(3) + "</dd><dt>" + termLink("cutoff-score", "cut-off") +
        "</dt><dd>" + (c.cutoff_score ?? 0).toFixed(2) +
        "</dd><dt>speaker</dt><dd class='mono'>" + esc(c.speaker || "–") + "</dd><dt>file</dt><dd class='path'>" + esc(c.path) + "</dd>" +
        (c.flag ? "<dt>flag</dt><dd>" + esc(c.flag.reason) + (c.flag.corrected_label ? " → " + esc(c.flag.corrected_label) : "") + "</dd>" : "") +
        "</dl><p><button type='button' class='play' data-play='" + id + "'>▶</button> <a href='" + page + "'>open the clip page</a></p>";
    } catch (e) { box.innerHTML = "<h3>Clip #" + id + "</h3><p class='error-text'>" + esc(e.message) + "</p>"; }
  }

  async function showSelection(ids) {
    selected = ids;
    document.getElementById("sel-empty").hidden = ids.length > 0;
    document.getElementById("sel-body").hidden = ids.length === 0;
    document.getElementById("sel-count").textContent = ids.length.toLocaleString();
    const list = document.getElementById("sel-list");
    list.innerHTML = "";
    if (!ids.length) return;
    const pos = new Map(); shown.forEach((i) => pos.set(cols.clip_id[i], i));
    let dis = 0; ids.forEach((id) => { const i = pos.get(id); if (i !== undefined && !cols.agree[i]) dis++; });
    document.getElementById("sel-breakdown").textContent = "(" + dis.toLocaleString() + " disagree; listed first, then by loss)";
    // disagreements first, then the highest loss: what most needs a listen
    const key = (id) => { const i = pos.get(id); return i === undefined ? [1, 0] : [cols.agree[i] ? 1 : 0, -cols.loss[i]]; };
    const sorted = ids.slice().sort((a, b) => { const ka = key(a), kb = key(b); return ka[0] - kb[0] || ka[1] - kb[1] || a - b; });
    const first = sorted.slice(0, 100);
    document.getElementById("sel-more").textContent = ids.length > 100 ? "showing the first 100; flagging applies to all " + ids.length.toLocaleString() : "";
    const resp = await earmark.getJSON(earmark.url("api_clips_by_id", { run: cfg.run_id, ids: first.join(",") }));
    resp.items.forEach((c) => {
      const li = document.createElement("li");
      li.dataset.selClip = c.id;
      const thumb = new URL(earmark.url("spectrogram", { id: c.id }), window.location.href);
      thumb.searchParams.set("size", "small");
      li.innerHTML = "<img class='spectro small' loading='lazy' alt='spectrogram of clip " + c.id + "' src='" + esc(thumb.pathname + thumb.search) + "'>" +
        "<button type='button' class='play' data-play='" + c.id + "'>▶</button>" +
        "<a href='" + esc(earmark.url("clip_page", { id: c.id, run: cfg.run_id })) + "'>#" + c.id + "</a> <span>" + esc(c.target) + " → " + esc(c.pred) + "</span>" +
        (c.agree ? "" : " <span class='badge bad'>≠</span>") + " <span data-flag-cell='" + c.id + "'></span>";
      list.appendChild(li);
      if (c.flag) earmark.showFlag(c.id, c.flag);
    });
  }

  document.getElementById("bulk-flag").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!selected.length) return;
    const fd = new FormData(ev.target);
    try {
      const body = { clip_ids: selected, reason: fd.get("reason"), corrected_label: fd.get("corrected_label") || null,
        note: fd.get("note") || "", author: earmark.author() };
      if (cfg.finding) body.finding_id = cfg.finding;
      if (!body.reason) { earmark.toast("pick a reason first", true); return; }
      const r = await earmark.bulkFlag(earmark.url("flags_bulk"), body, "selected clips");
      if (!r) return;
      const code = 1 + meta.flag_reasons.indexOf(r.reason);
      const kept = new Set(r.kept_ids || []);  // people's flags the server left as they were
      const written = selected.filter((id) => !kept.has(id));
      const set = new Set(written);
      for (let i = 0; i < meta.n; i++) if (set.has(cols.clip_id[i])) cols.flag[i] = code;
      written.forEach((id) => earmark.showFlag(id, { reason: r.reason, corrected_label: r.corrected_label }));
      if (cfg.color === "flag") draw();
    } catch (e) { earmark.toast(e.message, true); }
  });

  function syncUrl() {
    const u = new URL(window.location.href);
    if (cfg.color === "agreement") u.searchParams.delete("color"); else u.searchParams.set("color", cfg.color);
    if (cfg.disagree) u.searchParams.set("disagree", "true"); else u.searchParams.delete("disagree");
    window.history.replaceState(null, "", u.toString());
  }
  document.getElementById("color-by").addEventListener("change", async (ev) => {
    cfg.color = ev.target.value;
    syncUrl();
    showColorHelp();
    if (!cols) return;  // still loading: load() draws with this colour
    if (isColumn(cfg.color)) {
      try { await loadColumn(cfg.color); } catch (e) { earmark.toast(e.message, true); return; }
    }
    draw();
  });
  document.getElementById("disagree-only").addEventListener("change", (ev) => { cfg.disagree = ev.target.checked; syncUrl(); draw(); showSelection([]); });

  async function load() {
    try {
      meta = await earmark.getJSON(cfg.meta_url);
      if (!meta.n) { el.innerHTML = "<div class='loading'>This run has no projection yet: run <code>earmark project</code> or <code>earmark analyze</code>.</div>"; return; }
      const resp = await fetch(cfg.bin_url, { credentials: "same-origin" });
      if (!resp.ok) throw new Error("points: HTTP " + resp.status);
      cols = decode(await resp.arrayBuffer());
      safeVocab = meta.vocab.map(plain);
      if (isColumn(cfg.color)) await loadColumn(cfg.color);
      el.innerHTML = "";
      draw();
      el.on("plotly_click", (ev) => { const ids = pointsToClips(ev.points); if (ids.length) showClip(ids[0]); });
      el.on("plotly_selected", (ev) => { showSelection(ev ? pointsToClips(ev.points) : []).catch((e) => earmark.toast(e.message, true)); });
      el.on("plotly_deselect", () => showSelection([]));
      el.dataset.ready = "1";
    } catch (e) {
      el.innerHTML = "<div class='loading error-text'>Could not load the cloud: " + esc(e.message) + "</div>";
    }
  }
  window.earmarkCloud = { get selected() { return selected; } };
  load();
})();
