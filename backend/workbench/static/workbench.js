// Progressive enhancement only: every page works without this file.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // The queue's filter selects apply as soon as they change (the Apply button stays for keyboards and no-JS).
  const filters = document.getElementById("filters");
  if (filters) {
    for (const select of filters.querySelectorAll("select")) {
      select.addEventListener("change", () => filters.requestSubmit());
    }
  }
  // A step's button is disabled once pressed, so a double click cannot send it twice.
  for (const form of document.querySelectorAll("form.step")) {
    form.addEventListener("submit", () => {
      const button = form.querySelector("button[type=submit]");
      if (button) button.disabled = true;
    });
  }
});
