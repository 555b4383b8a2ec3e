// The case page's small map: the report's point (and how accurate it is) over its county's outline, both from
// this app (no tile server). Without JavaScript the page shows the coordinates as text.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("case-map");
  if (!el || typeof L === "undefined") return;
  el.hidden = false;
  const at = [Number(el.dataset.lat), Number(el.dataset.lon)];
  const map = L.map(el, {
    attributionControl: false, minZoom: 3, maxZoom: 18, scrollWheelZoom: false, keyboard: true,
  }).setView(at, 14);
  const accuracy = Number(el.dataset.accuracy);
  if (accuracy > 0) {
    L.circle(at, { radius: accuracy, color: "#b3261e", weight: 1, fillOpacity: 0.12, interactive: false }).addTo(map);
  }
  L.circleMarker(at, { radius: 7, color: "#ffffff", weight: 2, fillColor: "#b3261e", fillOpacity: 1, interactive: false })
    .addTo(map);
  if (!el.dataset.boundaries) return;
  fetch(el.dataset.boundaries, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : null))
    .then((geo) => {
      if (!geo || !geo.features.length) return;
      const outline = L.geoJSON(geo, {
        style: { color: "#0b5cab", weight: 1.5, fillColor: "#0b5cab", fillOpacity: 0.05 },
        interactive: false,
      }).addTo(map);
      // The whole county in view, the point inside it.
      map.fitBounds(outline.getBounds().extend(at), { padding: [8, 8] });
    });
});
