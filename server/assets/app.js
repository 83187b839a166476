// Tideline web interface: the few things a server-rendered page cannot do.
// Every page works without this script except taking the device's position.
"use strict";

// The browser's UTC offset, so a time typed in a datetime-local box is
// stored with the offset the officer meant.
document.querySelectorAll("input[data-tz]").forEach((input) => {
  input.value = String(-new Date().getTimezoneOffset());
});

// Nothing typed is lost. The entry form is copied into this browser's
// storage as it is typed, under a name per person and form or record
// (data-keep), until the server says it has it: the record page after a
// save (?saved=1), or an entry page drawn after storing (data-drawn=stored).
// A save that never reached the server — the session had ended, the server
// was restarting, the tab or the browser closed — leaves the copy, and the
// next time the form is opened it is drawn again from it (posted back as
// `restore`, which stores nothing), so the officer carries on where they
// were. A photo is kept as the hash of its finished upload (uploadPhotos).
(function keepWhatIsTyped() {
  const PENDING = "tideline:pending";
  let store;
  try {
    store = window.localStorage;
    store.getItem(PENDING);
  } catch (e) {
    return;
  }
  const form = document.querySelector("form.entry[data-keep]");
  const confirmed =
    new URLSearchParams(location.search).has("saved") || (form && form.dataset.drawn === "stored");
  const pending = sessionStorage.getItem(PENDING);
  if (pending && confirmed) {
    store.removeItem(pending);
    sessionStorage.removeItem(PENDING);
  }
  if (!form) return;
  const key = form.dataset.keep;
  const entries = () =>
    Array.from(new FormData(form)).filter(
      ([name, value]) => typeof value === "string" && name !== "_action"
    );
  const keep = () => {
    try {
      store.setItem(key, JSON.stringify({ at: Date.now(), entries: entries() }));
    } catch (e) {
      // Storage full or refused: the server copy is all there is.
    }
  };
  const kept = store.getItem(key);
  if (kept && form.dataset.drawn === "opened") {
    let copy;
    try {
      copy = JSON.parse(kept);
    } catch (e) {
      copy = null;
    }
    if (copy && Array.isArray(copy.entries)) {
      const back = document.createElement("form");
      back.method = "post";
      back.enctype = "multipart/form-data";
      back.action = form.getAttribute("action");
      back.hidden = true;
      const add = (name, value) => {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = value;
        back.appendChild(input);
      };
      copy.entries.forEach(([name, value]) => add(name, value));
      add("_action", "restore");
      add("_restored_at", new Date(copy.at).toLocaleString());
      document.body.appendChild(back);
      back.submit();
      return;
    }
  }
  // Drawn from a post, the page holds what was typed, including values the
  // server could not store yet: keep them before anything else happens.
  // A page only opened holds nothing new until something is typed.
  let typed = form.dataset.drawn !== "opened";
  if (typed) keep();
  // On every keystroke: a copy is a few kilobytes, and a tab can be
  // closed at any moment.
  const edited = () => {
    typed = true;
    keep();
  };
  form.addEventListener("input", edited);
  form.addEventListener("change", edited);
  window.addEventListener("pagehide", () => typed && keep());
  form.addEventListener("submit", () => {
    keep();
    sessionStorage.setItem(PENDING, key);
  });
  document.querySelectorAll("a[data-discard]").forEach((a) => {
    a.addEventListener("click", () => store.removeItem(a.dataset.discard));
  });
})();

// Repeats (crew members, seizures): Add and Remove work in place, without
// a reload, and focus goes to the new entry (or back to Add after a
// removal). Each repeat carries a <template> of one empty entry whose index
// is a token; the server reads entries by their indices, so gaps are fine.
// Without the script the buttons post and the page comes back at the repeat.
function wireRepeats(root) {
  root.querySelectorAll("fieldset.repeat").forEach((box) => {
    if (box.dataset.wired) return;
    box.dataset.wired = "1";
    const template = box.querySelector(":scope > template");
    const add = box.querySelector(":scope > button[data-add]");
    if (!template || !add) return;
    const entries = () => Array.from(box.querySelectorAll(":scope > fieldset.item"));
    const changed = () => {
      entries().forEach((item, n) => {
        item
          .querySelectorAll(":scope > legend > .n, :scope > button[data-remove] > .n")
          .forEach((span) => (span.textContent = String(n + 1)));
      });
      // The browser's copy of the form follows (keepWhatIsTyped).
      box.closest("form").dispatchEvent(new Event("input", { bubbles: true }));
    };
    add.addEventListener("click", (ev) => {
      ev.preventDefault();
      const next = entries().reduce((m, item) => Math.max(m, Number(item.dataset.index) + 1), 0);
      const holder = document.createElement("div");
      holder.innerHTML = template.innerHTML.split(template.dataset.token).join(String(next));
      const item = holder.firstElementChild;
      box.insertBefore(item, template);
      wireRepeats(item);
      changed();
      const first = item.querySelector("input:not([type=hidden]), select, textarea");
      (first || item).focus();
    });
    box.addEventListener("click", (ev) => {
      const remove = ev.target.closest("button[data-remove]");
      if (!remove || remove.closest("fieldset.repeat") !== box) return;
      ev.preventDefault();
      remove.closest("fieldset.item").remove();
      changed();
      add.focus();
    });
  });
}
wireRepeats(document);

// Photos never cost a report. Each photo uploads on its own as soon as it
// is chosen, in 1 MiB pieces at the offset the server says it holds, so a
// Wi-Fi link that drops mid-photo carries on where it stopped; progress is
// shown per photo. The file input loses its name, so the report's own post
// carries no file: a finished photo is a hidden hash in the form, attached
// to the record at once when it has been saved, else at its first save. A
// photo the server refuses (too big, not an image) is named with why, and
// nothing else on the page changes. Saving while photos are still on their
// way waits for them. Without the script the photos go with the post.
(function uploadPhotos() {
  const form = document.querySelector("form.entry");
  if (!form || !window.XMLHttpRequest || !window.Blob) return;
  const inputs = form.querySelectorAll("input[type=file][data-upload]");
  if (!inputs.length) return;
  const pending = new Set();
  let held = null;
  const waiting = document.createElement("p");
  waiting.id = "uploads-waiting";
  waiting.className = "notice";
  waiting.setAttribute("role", "status");
  waiting.hidden = true;
  (form.querySelector(".buttons") || form).before(waiting);
  const tell = () => {
    waiting.textContent =
      "Waiting for " + pending.size + " photo(s) to finish uploading; the report is saved as soon as they have.";
  };
  const settled = () => {
    if (!held) return;
    if (pending.size) return tell();
    const submitter = held;
    held = null;
    waiting.hidden = true;
    form.requestSubmit(submitter);
  };
  form.addEventListener("submit", (ev) => {
    if (!pending.size) return;
    ev.preventDefault();
    held = ev.submitter || form.querySelector("#save-draft");
    waiting.hidden = false;
    tell();
  });

  // One request; resolves with the status (0 when the link failed) and the
  // JSON body, never rejects.
  const request = (method, url, body, type, progress) =>
    new Promise((resolve) => {
      const x = new XMLHttpRequest();
      x.open(method, url);
      if (type) x.setRequestHeader("Content-Type", type);
      x.timeout = 120000;
      if (progress) x.upload.onprogress = (e) => progress(e.loaded);
      x.onload = () => {
        let json = {};
        try {
          json = JSON.parse(x.responseText);
        } catch (e) {
          json = {};
        }
        resolve({ status: x.status, body: json });
      };
      x.onerror = x.ontimeout = x.onabort = () => resolve({ status: 0, body: {} });
      x.send(body);
    });
  const pause = (ms) => new Promise((r) => setTimeout(r, ms));
  // Worth trying again: no answer, a server restarting or busy, a session
  // to be renewed in another tab.
  const passing = (status) => status === 0 || status === 401 || status === 408 || status === 429 || status >= 500;
  const lost = (status) =>
    status === 401
      ? "Signed out: sign in again (in another tab) and the upload carries on."
      : "Connection lost; trying again…";

  inputs.forEach((input) => {
    const path = input.dataset.upload;
    const field = input.closest("[data-field]") || input.parentNode;
    input.removeAttribute("name");
    const list = () => {
      let ul = field.querySelector("ul.files");
      if (!ul) {
        ul = document.createElement("ul");
        ul.className = "files";
        input.before(ul);
      }
      return ul;
    };
    const errors = () => {
      let span = document.getElementById(input.id + "-error");
      if (!span) {
        span = document.createElement("span");
        span.className = "field-error";
        span.id = input.id + "-error";
        input.after(span);
      }
      input.setAttribute("aria-invalid", "true");
      const described = (input.getAttribute("aria-describedby") || "").split(" ").filter(Boolean);
      if (!described.includes(span.id)) input.setAttribute("aria-describedby", described.concat(span.id).join(" "));
      return span;
    };
    const refuse = (item, message) => {
      item.remove();
      const span = errors();
      span.textContent = (span.dataset.js ? span.textContent + " " : "") + message + " The report is kept: choose another photo.";
      span.dataset.js = "1";
    };
    input.addEventListener("change", () => {
      const files = Array.from(input.files || []);
      input.value = "";
      const span = document.getElementById(input.id + "-error");
      if (span) {
        span.textContent = "";
        delete span.dataset.js;
      }
      files.forEach((file) => send(file));
    });

    async function send(file) {
      const item = document.createElement("li");
      item.className = "uploading";
      const name = document.createElement("span");
      name.className = "upload-name";
      name.textContent = file.name;
      const bar = document.createElement("progress");
      bar.max = file.size || 1;
      bar.value = 0;
      const state = document.createElement("span");
      state.className = "upload-state";
      state.setAttribute("role", "status");
      state.textContent = "Uploading…";
      item.append(name, " ", bar, " ", state);
      list().appendChild(item);
      pending.add(item);
      try {
        await carry(file, item, bar, state);
      } finally {
        pending.delete(item);
        settled();
      }
    }

    async function carry(file, item, bar, state) {
      const target = { name: file.name, size: file.size, field: path };
      if (form.dataset.record) target.record = form.dataset.record;
      else target.form = form.dataset.form;
      let wait = 1000;
      let begun;
      for (;;) {
        begun = await request("POST", "/api/v1/uploads", JSON.stringify(target), "application/json");
        if (!passing(begun.status)) break;
        state.textContent = lost(begun.status);
        await pause(wait);
        wait = Math.min(wait * 2, 15000);
      }
      if (begun.status !== 201) return refuse(item, begun.body.message || "The photo was refused (HTTP " + begun.status + ").");
      const id = begun.body.id;
      const chunk = begun.body.chunk_bytes || 1048576;
      let offset = 0;
      wait = 1000;
      for (;;) {
        const end = Math.min(offset + chunk, file.size);
        const sent = await request(
          "PATCH",
          "/api/v1/uploads/" + id + "?offset=" + offset,
          file.slice(offset, end),
          "application/octet-stream",
          (n) => (bar.value = offset + n)
        );
        if (sent.status === 200) {
          wait = 1000;
          offset = sent.body.held;
          bar.value = offset;
          state.textContent = "Uploading " + Math.floor((100 * offset) / (file.size || 1)) + "%…";
          if (sent.body.sha256) return finished(file, item, sent.body);
          continue;
        }
        if (sent.status === 409 && sent.body.details && typeof sent.body.details.held === "number") {
          offset = sent.body.details.held;
          continue;
        }
        if (!passing(sent.status)) return refuse(item, sent.body.message || "The photo was refused (HTTP " + sent.status + ").");
        // The link dropped (or the server restarted): ask what arrived,
        // then carry on from there.
        state.textContent = lost(sent.status);
        for (;;) {
          await pause(wait);
          wait = Math.min(wait * 2, 15000);
          const asked = await request("GET", "/api/v1/uploads/" + id);
          if (asked.status === 200) {
            offset = asked.body.held;
            break;
          }
          if (!passing(asked.status)) return refuse(item, asked.body.message || "The upload was lost; choose the photo again.");
          state.textContent = lost(asked.status);
        }
      }
    }

    function finished(file, item, done) {
      if (!input.multiple) {
        list()
          .querySelectorAll("li")
          .forEach((li) => li !== item && !pending.has(li) && li.remove());
      }
      item.className = "uploaded";
      item.textContent = "";
      const hash = document.createElement("input");
      hash.type = "hidden";
      hash.name = "f." + path;
      hash.value = done.sha256;
      const img = document.createElement("img");
      img.src = URL.createObjectURL(file);
      img.alt = file.name;
      img.width = 120;
      const state = document.createElement("span");
      state.className = "upload-state";
      state.textContent = done.attached ? file.name + ": attached" : file.name + ": uploaded; attached when the report is saved";
      item.append(hash, img, " ", state);
      // The browser's copy of the form follows (keepWhatIsTyped).
      form.dispatchEvent(new Event("input", { bubbles: true }));
    }
  });
})();

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

// The sync indicator follows the instance's sync status: synced, syncing,
// offline (the upstream cannot be reached), or refused (it answered no, or
// something else answers there) with the reason and what to do; and it
// says plainly when this browser cannot reach the instance at all. Sync
// now shows what it moved, or why it failed.
(function syncIndicator() {
  const box = document.getElementById("sync");
  if (!box || box.dataset.state === "none") return;
  const state = document.getElementById("sync-state");
  const last = document.getElementById("sync-last");
  const pending = document.getElementById("sync-pending");
  const result = document.getElementById("sync-result");
  const fmt = (t) => (t ? t.replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC") : "never");
  function show(s) {
    // Cleared by the next success: whether the last attempt failed.
    const failing = !!s.last_error;
    const refused = failing && s.last_error_kind && s.last_error_kind !== "unreachable";
    box.dataset.state = s.running
      ? "running"
      : refused
      ? "refused"
      : failing
      ? "offline"
      : s.last_success
      ? "online"
      : "never";
    box.dataset.kind = failing && s.last_error_kind ? s.last_error_kind : "";
    state.textContent = s.running
      ? "Syncing with the upstream…"
      : refused
      ? (s.headline || "Sync failed: " + s.last_error) + " " + (s.advice || "")
      : failing
      ? "Offline: the upstream cannot be reached. Work goes on here and syncs when the link is back."
      : s.last_success
      ? "Synced"
      : "Not synced yet";
    const o = s.last_outcome;
    last.textContent =
      "Last successful sync: " + fmt(s.last_success) + (o ? " (" + o.pushed + " sent, " + o.pulled + " received)" : "");
    if (typeof s.pending_local_changes === "number") {
      pending.textContent = s.pending_local_changes + " local change(s) waiting";
    }
  }
  async function refresh() {
    try {
      const resp = await fetch("/api/v1/sync/status", { credentials: "same-origin", cache: "no-store" });
      if (!resp.ok) throw new Error("status " + resp.status);
      show(await resp.json());
    } catch (e) {
      box.dataset.state = "unreachable";
      state.textContent = "This device cannot reach the Tideline server; what is on screen may be out of date.";
    }
  }
  const form = document.getElementById("sync-now-form");
  if (form && result) {
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      result.textContent = "Syncing…";
      try {
        const resp = await fetch("/api/v1/sync/now", { method: "POST", credentials: "same-origin" });
        const body = await resp.json().catch(() => ({}));
        result.textContent = resp.ok
          ? "Sync done: " + body.pushed + " record(s) sent, " + body.pulled + " received."
          : "Sync failed: " + (body.message || "HTTP " + resp.status);
      } catch (e) {
        result.textContent = "Sync failed: this device cannot reach the Tideline server.";
      }
      button.disabled = false;
      refresh();
    });
  }
  setInterval(refresh, box.dataset.state === "running" ? 3000 : 15000);
  if (box.dataset.state === "running") refresh();
})();
