// Tideline web interface: the few things a server-rendered page cannot do.
// Every page works without this script except taking the device's position.
"use strict";

// The browser's UTC offset, so a time typed in a datetime-local box is
// stored with the offset the officer meant.
document.querySelectorAll("input[data-tz]").forEach((input) => {
  input.value = String(-new Date().getTimezoneOffset());
});

// "Use this device's position": fills latitude and longitude; when the
// device cannot tell, says so and leaves manual entry to the officer.
document.querySelectorAll("button[data-geolocate]").forEach((button) => {
  if (!("geolocation" in navigator)) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    const id = button.dataset.geolocate;
    const status = document.getElementById(id + "-geo");
    status.textContent = "Finding position…";
    navigator.geolocation.getCurrentPosition(
      (pos) => {
        document.getElementById(id + "-lat").value = pos.coords.latitude.toFixed(6);
        document.getElementById(id + "-lon").value = pos.coords.longitude.toFixed(6);
        status.textContent = "Position set (±" + Math.round(pos.coords.accuracy) + " m).";
      },
      (err) => {
        status.textContent = "No position from this device (" + err.message + "). Enter it by hand.";
      },
      { enableHighAccuracy: true, timeout: 15000, maximumAge: 60000 }
    );
  });
});

// The sync indicator follows the instance's sync status, and says plainly
// when this browser cannot reach the instance at all.
(function syncIndicator() {
  const box = document.getElementById("sync");
  if (!box || box.dataset.state === "none") return;
  const state = document.getElementById("sync-state");
  const last = document.getElementById("sync-last");
  const pending = document.getElementById("sync-pending");
  const fmt = (t) => (t ? t.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC") : "never");
  async function refresh() {
    try {
      const resp = await fetch("/api/v1/sync/status", { credentials: "same-origin", cache: "no-store" });
      if (!resp.ok) throw new Error("status " + resp.status);
      const s = await resp.json();
      const failing = s.last_attempt && s.last_attempt !== s.last_success;
      box.dataset.state = s.running ? "running" : failing ? "offline" : s.last_success ? "online" : "never";
      state.textContent = s.running
        ? "Syncing with the upstream…"
        : failing
        ? "Offline: the upstream cannot be reached. Work goes on here and syncs when the link is back."
        : s.last_success
        ? "Synced"
        : "Not synced yet";
      last.textContent = "Last successful sync: " + fmt(s.last_success);
      if (typeof s.pending_local_changes === "number") {
        pending.textContent = s.pending_local_changes + " local change(s) waiting";
      }
    } catch (e) {
      box.dataset.state = "unreachable";
      state.textContent = "This device cannot reach the Tideline server; what is on screen may be out of date.";
    }
  }
  setInterval(refresh, box.dataset.state === "running" ? 3000 : 15000);
  if (box.dataset.state === "running") refresh();
})();
