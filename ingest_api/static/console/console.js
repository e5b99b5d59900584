// The console's few scripts: live progress from the progress stream, the throughput
// chart's refresh, and the submit page's upload with its progress. Pages read fine without.
"use strict";

function formatNumber(n) {
  return Math.round(n).toLocaleString("en-US");
}

function formatDuration(s) {
  if (s === null || s === undefined) return "—";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}

function showProgress(state, finished) {
  const id = state.batch_job_id;
  document.querySelectorAll('[data-job="' + id + '"]').forEach((box) => {
    const bar = box.querySelector("progress");
    bar.value = state.progress_percent;
    bar.textContent = state.progress_percent.toFixed(1) + " %";
    const set = (field, text) => {
      const el = box.querySelector('[data-field="' + field + '"]');
      if (el) el.textContent = text;
    };
    set("progress_percent", state.progress_percent.toFixed(1) + " %");
    set("processed_items", formatNumber(state.processed_items));
    set("items_per_s", formatNumber(state.items_per_s));
    set("eta_s", finished ? "—" : formatDuration(state.eta_s));
  });
  document.querySelectorAll('[data-job-status="' + id + '"]').forEach((el) => {
    el.textContent = state.status;
    el.className = "status status-" + state.status;
  });
  document.querySelectorAll('[data-job-failed="' + id + '"]').forEach((el) => {
    el.textContent = formatNumber(state.failed_items);
  });
  const page = document.querySelector('[data-job-page="' + id + '"]');
  if (page) {
    ["success_items", "failed_items", "cancelled_items"].forEach((field) => {
      const el = page.querySelector('[data-field-job="' + field + '"]');
      if (el) el.textContent = formatNumber(state[field]);
    });
    if (finished) {
      page.querySelector(".finished-note").hidden = false;
      document.querySelectorAll("[data-while-running]").forEach((el) => { el.hidden = true; });
      document.querySelectorAll("img[data-refresh]").forEach((img) => img.removeAttribute("data-refresh"));
    }
  }
}

function followProgress() {
  const ids = new Set();
  document.querySelectorAll("[data-stream]").forEach((el) => {
    el.dataset.stream.split(",").filter(Boolean).forEach((id) => ids.add(id));
  });
  if (!ids.size || !window.EventSource) return;
  const query = Array.from(ids).map((id) => "job=" + encodeURIComponent(id)).join("&");
  const source = new EventSource("/ui/events?" + query);
  source.addEventListener("progress", (e) => showProgress(JSON.parse(e.data), false));
  source.addEventListener("done", (e) => {
    const state = JSON.parse(e.data);
    ids.delete(state.batch_job_id);
    showProgress(state, true);
    if (!ids.size) source.close();
  });
  source.addEventListener("error", (e) => {
    if (e.data) source.close(); // the session ended: the stream said so
  });
}

function refreshCharts() {
  document.querySelectorAll("img[data-refresh]").forEach((img) => {
    const every = Number(img.dataset.refresh) * 1000;
    const base = img.src.split("?")[0];
    const tick = () => {
      if (!img.hasAttribute("data-refresh")) {
        img.src = base + "?t=" + Date.now(); // one last time, finished
        return;
      }
      img.src = base + "?t=" + Date.now();
      setTimeout(tick, every);
    };
    setTimeout(tick, every);
  });
}

function formatOf(name) {
  const lower = name.toLowerCase();
  if (lower.endsWith(".csv")) return "csv";
  if (lower.endsWith(".json")) return "json";
  return "jsonl";
}

function showErrors(box, body, status) {
  box.hidden = false;
  box.textContent = "";
  const head = document.createElement("p");
  head.textContent = (body && body.detail) ? body.detail : "The upload failed (HTTP " + status + ").";
  box.appendChild(head);
  const invalid = (body && body.invalid_items) || [];
  if (invalid.length) {
    const list = document.createElement("ul");
    invalid.forEach((error) => {
      const li = document.createElement("li");
      const where = error.line !== undefined ? "line " + error.line : "item " + error.item_index;
      li.textContent = where + ": " + error.message;
      list.appendChild(li);
    });
    box.appendChild(list);
  }
}

function setUpSubmit() {
  const form = document.getElementById("submit-form");
  if (!form) return;
  const input = document.getElementById("file");
  const drop = document.getElementById("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    if (e.dataTransfer.files.length) input.files = e.dataTransfer.files;
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const file = input.files[0];
    const errors = document.getElementById("submit-errors");
    errors.hidden = true;
    if (!file) return;
    const format = formatOf(file.name);
    const params = new URLSearchParams({ job_type: form.job_type.value, format: format });
    if (form.priority.value) params.set("priority", form.priority.value);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/ui/submit?" + params.toString());
    xhr.setRequestHeader("X-CSRF-Token", document.querySelector('meta[name="csrf-token"]').content);
    xhr.setRequestHeader("Content-Type", format === "csv" ? "text/csv" : (format === "json" ? "application/json" : "application/x-ndjson"));
    xhr.setRequestHeader("Accept", "application/json");
    const box = document.getElementById("upload");
    const bar = document.getElementById("upload-progress");
    const text = document.getElementById("upload-text");
    box.hidden = false;
    document.getElementById("submit-button").disabled = true;
    xhr.upload.addEventListener("progress", (p) => {
      if (!p.lengthComputable) return;
      bar.value = (100 * p.loaded) / p.total;
      text.textContent = formatNumber(p.loaded / 1024) + " of " + formatNumber(p.total / 1024) + " KiB";
    });
    xhr.upload.addEventListener("load", () => { text.textContent = "Uploaded; validating the items…"; });
    xhr.addEventListener("load", () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
      if (xhr.status === 202 && body) {
        window.location.assign("/ui/jobs/" + body.batch_job_id);
        return;
      }
      document.getElementById("submit-button").disabled = false;
      box.hidden = true;
      showErrors(errors, body, xhr.status);
    });
    xhr.addEventListener("error", () => {
      document.getElementById("submit-button").disabled = false;
      showErrors(errors, null, 0);
    });
    xhr.send(file);
  });
}

document.addEventListener("DOMContentLoaded", () => {
  followProgress();
  refreshCharts();
  setUpSubmit();
});
