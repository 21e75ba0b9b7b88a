// The dashboard's only script: live status polling, copy buttons, confirmations, and the
// upload sent with fetch() so a refused upload keeps the chosen file.
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

// A browser cannot re-fill a file input from a server's answer, so the upload is posted with
// fetch(): on success the server redirects to the batch page and we follow; on a refusal its
// answer is the same form with the errors, which replaces this one, except for the file input
// itself, moved over with the chosen file. Without script the form posts as usual and the
// server keeps every other field.
function uploadInPlace(form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    const input = form.querySelector("input[type=file]");
    const file = input && input.files[0];
    const max = Number(form.dataset.maxBytes || 0);
    if (file && max && file.size > max) {
      showRefusal(`The file is larger than ${form.dataset.maxMib} MiB.`);
      return;
    }
    if (button) { button.disabled = true; button.textContent = "Uploading…"; }
    let response;
    try {
      response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
    } catch (_err) {
      if (button) { button.disabled = false; button.textContent = "Upload and parse"; }
      showRefusal("The upload did not reach the server (connection closed). Check the file size and try again.");
      return;
    }
    if (response.redirected) {  // 303 to the new batch's page (or to sign-in)
      window.location.assign(response.url);
      return;
    }
    const html = await response.text();
    const fresh = new DOMParser().parseFromString(html, "text/html");
    const freshMain = fresh.querySelector("main");
    const freshInput = freshMain && freshMain.querySelector("input[type=file]");
    if (!freshMain || !freshInput) { document.open(); document.write(html); document.close(); return; }
    // Keep the live input (and its file); take the new one's error state.
    for (const name of ["aria-describedby", "aria-invalid"]) {
      if (freshInput.hasAttribute(name)) input.setAttribute(name, freshInput.getAttribute(name));
      else input.removeAttribute(name);
    }
    freshInput.replaceWith(input);
    const main = document.querySelector("main");
    main.replaceChildren(...freshMain.childNodes);
    const newForm = main.querySelector("form[data-upload]");
    if (newForm) uploadInPlace(newForm);
    const summary = main.querySelector("#upload-refused");
    if (summary) summary.focus();
  });
}

function showRefusal(message) {
  let summary = document.querySelector("#upload-refused");
  if (!summary) {
    summary = document.createElement("div");
    summary.className = "error";
    summary.id = "upload-refused";
    summary.setAttribute("role", "alert");
    summary.tabIndex = -1;
    document.querySelector("form[data-upload]").before(summary);
  }
  summary.replaceChildren(Object.assign(document.createElement("p"), { textContent: message }));
  summary.focus();
}

// The results table's decision chips: their counts scan the whole batch, so the page is
// served without them and they are filled in when this answers.
async function fillCounts(nav) {
  try {
    const response = await fetch(nav.dataset.countsUrl, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const counts = await response.json();
    let all = 0;
    for (const [name, n] of Object.entries(counts)) {
      all += n;
      const el = nav.querySelector(`[data-count="${name}"]`);
      if (el) { el.textContent = n.toLocaleString("en-US"); el.parentElement.hidden = false; }
    }
    for (const el of nav.querySelectorAll("[data-count]")) if (!el.textContent) el.textContent = "0";
    nav.querySelector('[data-count="all"]').textContent = all.toLocaleString("en-US");
    nav.dataset.countsLoaded = "true";
  } catch (_err) { /* the chips still work without their counts */ }
}

document.addEventListener("DOMContentLoaded", () => {
  const chips = document.querySelector("nav[data-counts-url]");
  if (chips) fillCounts(chips);
  const upload = document.querySelector("form[data-upload]");
  if (upload) uploadInPlace(upload);
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
