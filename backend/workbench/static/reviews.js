// Live progress of intake jobs: polls each [data-progress-url] element's JSON and fills in its fields.
// Progressive enhancement only: without this file the page has a link that reloads it.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const box of document.querySelectorAll("[data-progress-url]")) {
    const labels = JSON.parse(box.dataset.labels || "{}");
    const url = box.dataset.progressUrl;
    const every = Number(box.dataset.pollMs) || 2000;
    for (const hint of box.querySelectorAll(".js-only")) hint.hidden = false;
    const set = (field, text) => {
      for (const el of box.querySelectorAll(`[data-field="${field}"]`)) el.textContent = text;
    };
    const poll = async () => {
      let p;
      try {
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (!response.ok) return;
        p = await response.json();
      } catch {
        setTimeout(poll, every * 2);  // a passing network fault: try again later
        return;
      }
      const bar = box.querySelector("progress");
      if (bar) {
        bar.value = p.percent;
        bar.textContent = `${p.percent}%`;
      }
      set("state", labels[p.state] || p.state);
      set("rows", (labels.rows || "{done} / {total}").replace("{done}", p.done).replace("{total}", p.total));
      for (const field of ["imported", "duplicates", "rejected", "records_created"]) set(field, String(p[field]));
      if (p.live) {
        setTimeout(poll, every);
      } else {
        // Finished: reload once so the page shows the final counts, the error table and its report link.
        for (const link of box.querySelectorAll('[data-field="refresh"]')) link.hidden = true;
        if (box.tagName !== "TR") window.location.reload();
      }
    };
    setTimeout(poll, every);
  }
});
