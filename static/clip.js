/* The clip page: a playhead over the spectrograms and the waveform while the clip plays, and a
 * click on either plays from that moment. */
(function () {
  "use strict";
  const audio = document.getElementById("clip-audio");
  if (!audio) return;
  const heads = Array.from(document.querySelectorAll(".media-fig .playhead"));
  let frame = 0;

  function place() {
    const d = audio.duration;
    const x = d && isFinite(d) ? Math.min(1, audio.currentTime / d) : 0;
    heads.forEach((h) => { h.style.left = (100 * x).toFixed(3) + "%"; h.classList.toggle("on", x > 0); });
  }
  function tick() {
    place();
    frame = audio.paused ? 0 : window.requestAnimationFrame(tick);
  }
  audio.addEventListener("play", () => { if (!frame) frame = window.requestAnimationFrame(tick); });
  ["pause", "ended", "seeked", "loadedmetadata", "timeupdate"].forEach((ev) => audio.addEventListener(ev, place));

  // who flagged the clip and when, kept in step with the flag (the form, the keys)
  const by = document.getElementById("flag-by");
  document.addEventListener("earmark:flag", (ev) => {
    if (!by || ev.detail.id !== document.querySelector("[data-current-clip]").dataset.currentClip) return;
    const flag = ev.detail.flag;
    by.hidden = !flag;
    if (!flag) return;
    by.querySelector("[data-f=author]").textContent = flag.author || "";
    const t = by.querySelector("time");
    t.setAttribute("datetime", flag.updated_at || "");
    window.earmark.humanTimes(by);
  });

  document.querySelectorAll(".media-fig [data-seek]").forEach((plot) => {
    plot.addEventListener("click", (ev) => {
      const r = plot.getBoundingClientRect();
      const d = audio.duration;
      if (!d || !isFinite(d) || !r.width) return;
      audio.currentTime = Math.max(0, Math.min(1, (ev.clientX - r.left) / r.width)) * d;
      audio.play().catch((e) => window.earmark.toast("cannot play: " + e.message, true));
    });
  });
})();
