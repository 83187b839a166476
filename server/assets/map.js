// The map of boardings: the region's coastlines and a coordinate grid, both
// served by the instance so they need no network, tiles on top when a tile
// URL is configured and they load, and one marker per record with a popup
// linking to it.
"use strict";
(function () {
  const el = document.getElementById("map");
  const points = JSON.parse(document.getElementById("points").textContent);
  const note = document.getElementById("map-tiles-note");
  if (typeof L === "undefined") {
    note.textContent = "The map could not be drawn in this browser.";
    return;
  }
  const map = L.map(el, { worldCopyJump: true, preferCanvas: true });
  // The grid: a line every degree (every 5 or 10 when zoomed out), labelled.
  const grid = L.layerGroup().addTo(map);
  function drawGrid() {
    grid.clearLayers();
    const b = map.getBounds();
    const span = Math.max(b.getNorth() - b.getSouth(), b.getEast() - b.getWest());
    const step = span > 60 ? 10 : span > 20 ? 5 : span > 4 ? 1 : span > 1 ? 0.25 : 0.05;
    const style = { color: "#7b8fa3", weight: 1, opacity: 0.6, interactive: false };
    const south = Math.max(-85, Math.floor(b.getSouth() / step) * step);
    const north = Math.min(85, Math.ceil(b.getNorth() / step) * step);
    const west = Math.floor(b.getWest() / step) * step;
    const east = Math.ceil(b.getEast() / step) * step;
    for (let lat = south; lat <= north; lat += step) {
      L.polyline([[lat, west], [lat, east]], style).addTo(grid);
      // Latitudes on the right edge, clear of the zoom buttons on the left.
      L.marker([lat, b.getEast()], { interactive: false, icon: L.divIcon({ className: "grid-label grid-label-lat", html: lat.toFixed(2) + "°", iconSize: [50, 12], iconAnchor: [52, 12] }) }).addTo(grid);
    }
    for (let lon = west; lon <= east; lon += step) {
      L.polyline([[south, lon], [north, lon]], style).addTo(grid);
      L.marker([b.getSouth(), lon], { interactive: false, icon: L.divIcon({ className: "grid-label", html: lon.toFixed(2) + "°", iconSize: [50, 12], iconAnchor: [-2, 14] }) }).addTo(grid);
    }
  }
  // Coastlines (Natural Earth 1:10m, clipped to the Eastern Caribbean).
  const coast = L.layerGroup().addTo(map);
  fetch("/assets/coastlines.json")
    .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
    .then((land) => {
      land.rings.forEach((ring) => {
        L.polygon(ring.map(([lon, lat]) => [lat, lon]), {
          color: "#5b7a5b", weight: 1, fillColor: "#dfe8d2", fillOpacity: 1, interactive: false,
        }).addTo(coast);
      });
      el.dataset.coast = String(land.rings.length);
      drawGrid();
      markers.bringToFront();
    })
    .catch(() => { el.dataset.coast = "0"; });
  const tiles = el.dataset.tiles;
  if (tiles) {
    let loaded = 0;
    const layer = L.tileLayer(tiles, { maxZoom: 18 }).addTo(map);
    layer.on("tileload", () => { loaded += 1; note.textContent = ""; });
    layer.on("tileerror", () => {
      if (loaded === 0) note.textContent = "Map tiles are not reachable from here; positions are drawn over the coastlines and a coordinate grid.";
    });
  } else {
    note.textContent = "No map tiles are configured (map_tile_url); positions are drawn over the coastlines and a coordinate grid.";
  }
  const markers = L.featureGroup().addTo(map);
  const escape = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  points.forEach((p) => {
    L.circleMarker([p.lat, p.lon], { radius: 7, color: "#0b5cad", fillColor: "#2f80d1", fillOpacity: 0.85, weight: 2 })
      .bindPopup(
        '<a href="/records/' + encodeURIComponent(p.id) + '">' + escape(p.vessel) + "</a><br>" +
        escape(p.station) + " · " + escape(p.status) + "<br>" + escape(p.when) + "<br>" +
        p.lat.toFixed(4) + ", " + p.lon.toFixed(4)
      )
      .addTo(markers);
  });
  if (points.length > 0) {
    map.fitBounds(markers.getBounds().pad(0.3), { maxZoom: 10 });
  } else {
    map.setView([13.5, -61.0], 6); // the Eastern Caribbean
  }
  map.on("moveend", drawGrid);
  drawGrid();
  // Said on the element, for people inspecting the page and for tests.
  el.dataset.markers = String(markers.getLayers().length);
})();
