// The dashboard's only script: live status polling, copy buttons, and confirmations.
// Pages work without it (forms post normally; the status section just does not refresh).
"use strict";

function pollStatus(section) {
  const url = section.dataset.statusUrl;
  const initial = section.dataset.status;
  if (initial !== "parsing_content" && initial !== "verification_ongoing") return;
  const progress = section.querySelector("progress");
  const set = (sel, text) => { const el = section.querySelector(sel); if (el) el.textContent = text; };
  async function tick() {
    let body;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.status === 401) { window.location.assign("/signin"); return; }
      if (!response.ok) throw new Error(String(response.status));
      body = await response.json();
    } catch (_err) {
      setTimeout(tick, 3000);  // a restart or a blip: keep trying, a little slower
      return;
    }
    if (body.status !== initial) { window.location.reload(); return; }
    if (body.progress && progress) {
      progress.max = body.progress.total || 1;
      progress.value = body.progress.verified;
      set("[data-verified]", body.progress.verified);
      set("[data-total]", body.progress.total);
      if (body.percent !== null) set("[data-percent]", body.percent.toFixed(1));
    }
    const stall = section.querySelector("#stall");
    if (stall && "stall" in body) {
      stall.hidden = !body.stall;
      if (body.stall) {
        set("[data-stall-reason]", body.stall.reason);
        const retry = body.stall.retry_at;
        set("[data-stall-retry]", retry ? retry.replace("T", " ").replace("Z", " UTC") : "soon");
      }
    }
    setTimeout(tick, 1000);
  }
  setTimeout(tick, 1000);
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) pollStatus(live);
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const field = document.querySelector(button.dataset.copy);
      field.select();
      try { await navigator.clipboard.writeText(field.value); button.textContent = "Copied"; }
      catch (_err) { button.textContent = "Selected: press Ctrl+C"; }
    });
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }
});
