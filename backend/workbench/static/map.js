// The case map: county outlines and clustered case points, both from this app (no tile server, no other host).
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const el = document.getElementById("map");
  if (!el || typeof L === "undefined") return;
  el.hidden = false;
  // No tile layer sets a zoom range, and clustering needs one.
  const map = L.map(el, { zoomControl: true, attributionControl: false, minZoom: 3, maxZoom: 18 }).setView([30.27, 120.15], 10);
  const fitted = { done: false };
  const fit = (bounds) => {
    if (!fitted.done && bounds.isValid()) {
      map.fitBounds(bounds, { padding: [12, 12] });
      fitted.done = true;
    }
  };
  fetch(el.dataset.boundaries, { credentials: "same-origin" })
    .then((r) => r.json())
    .then((geo) => {
      const layer = L.geoJSON(geo, {
        style: { color: "#0b5cab", weight: 1.5, fillColor: "#0b5cab", fillOpacity: 0.04 },
        interactive: false,
      }).addTo(map);
      fit(layer.getBounds());
    });
  const status = document.getElementById("map-status");
  fetch(el.dataset.points, { credentials: "same-origin" })
    .then((r) => r.json())
    .then((data) => {
      const clusters = L.markerClusterGroup({ chunkedLoading: true, showCoverageOnHover: false });
      const markers = data.points.map((p) => {
        const marker = L.marker([p.y, p.x], {
          icon: L.divIcon({ className: p.o ? "pin overdue" : "pin", iconSize: [14, 14] }),
          title: `#${p.i}`,
          alt: `#${p.i}`,
          keyboard: true,
        });
        marker.on("click", () => { window.location.href = `/workbench/cases/${p.i}`; });
        return marker;
      });
      clusters.addLayers(markers);
      map.addLayer(clusters);
      if (markers.length) fit(clusters.getBounds());
      if (status) status.textContent = status.dataset.template.replace("{n}", String(data.points.length));
    });
});
