// The try-it page: no build step, no framework. Every request goes to the
// server's own API, with the API key when one is given.
"use strict";

const $ = (id) => document.getElementById(id);

function authHeaders() {
  const key = $("apikey").value.trim();
  sessionStorage.setItem("resizer-api-key", key);
  return key ? { Authorization: "Bearer " + key } : {};
}

function bytes(n) {
  return n < 1024 ? n + " B" : n < 1 << 20 ? (n / 1024).toFixed(1) + " KB" : (n / (1 << 20)).toFixed(2) + " MB";
}

// explain turns an RFC 9457 problem into words for people.
async function explain(resp) {
  let problem = {};
  try { problem = await resp.json(); } catch (e) { /* not JSON */ }
  const detail = problem.detail ? ": " + problem.detail : "";
  switch (resp.status) {
    case 400: return "The request is not right" + detail;
    case 401: return "An API key is needed (or this one is wrong).";
    case 403: return "The upload URL was refused" + detail;
    case 413: return "Too large" + detail;
    case 415: return "That is not an image this server takes" + detail;
    case 422: return "The image cannot be read: it may be damaged or cut short" + detail;
    case 503: return "The server is busy; try again in " + (resp.headers.get("Retry-After") || "a few") + " s.";
    default: return "Failed (" + resp.status + ")" + detail;
  }
}

function say(id, text, isError) {
  const el = $(id);
  el.textContent = text;
  el.classList.toggle("error", !!isError);
}

function showImage(img, info, blob) {
  return new Promise((resolve) => {
    img.onload = () => {
      info.textContent = img.naturalWidth + "×" + img.naturalHeight + ", " + bytes(blob.size);
      resolve();
    };
    img.src = URL.createObjectURL(blob);
  });
}

function dropZone(zoneId, inputId, onFile) {
  const zone = $(zoneId), input = $(inputId);
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    if (e.dataTransfer.files.length) {
      input.files = e.dataTransfer.files;
      onFile(input.files[0]);
    }
  });
  input.addEventListener("change", () => input.files.length && onFile(input.files[0]));
}

async function resize(event) {
  event.preventDefault();
  const file = $("resize-file").files[0];
  if (!file) { say("resize-message", "Choose an image first.", true); return; }
  const q = new URLSearchParams();
  for (const id of ["width", "height", "quality"]) if ($(id).value) q.set(id, $(id).value);
  if ($("fit").value !== "inside") q.set("fit", $("fit").value);
  if ($("format").value !== "original") q.set("format", $("format").value);
  // The operations: every field with a data-param, when set and not its default.
  for (const el of document.querySelectorAll("#more [data-param]")) {
    const v = el.value.trim();
    if (v !== "" && v !== (el.dataset.default || "")) q.set(el.dataset.param, v);
  }
  say("resize-message", "Resizing…");
  const start = performance.now();
  const resp = await fetch("/resize?" + q, { method: "POST", body: file, headers: authHeaders() });
  const took = Math.round(performance.now() - start);
  if (!resp.ok) { say("resize-message", await explain(resp), true); return; }
  const blob = await resp.blob();
  await showImage($("result"), $("result-info"), blob);
  say("resize-message", resp.headers.get("Content-Type") + " in " + took + " ms");
}

async function upload() {
  const file = $("upload-file").files[0];
  if (!file) { say("upload-message", "Choose an image first.", true); return; }
  say("upload-message", "Asking for an upload URL…");
  $("variants").replaceChildren();
  const headers = Object.assign({ "Content-Type": "application/json" }, authHeaders());
  const presign = await fetch("/uploads/presign", {
    method: "POST", headers,
    body: JSON.stringify({ filename: file.name, content_type: file.type || "application/octet-stream", size: file.size }),
  });
  if (!presign.ok) { say("upload-message", await explain(presign), true); return; }
  const p = await presign.json();
  say("upload-message", "Uploading straight to storage…");
  let resp;
  if (p.method === "PUT") {
    resp = await fetch(p.url, { method: "PUT", headers: p.headers, body: file });
  } else {
    const form = new FormData();
    for (const [k, v] of Object.entries(p.fields || {})) form.append(k, v);
    form.append("file", file);
    resp = await fetch(p.url, { method: "POST", body: form });
  }
  if (!resp.ok) { say("upload-message", await explain(resp), true); return; }
  if (p.method !== "PUT") {
    say("upload-message", "Stored as " + p.key + "; the bucket's event makes its variants in a moment.");
    return;
  }
  const result = await resp.json();
  say("upload-message", "Stored as " + result.key + " with " + result.variants.length + " variants.");
  for (const v of result.variants) {
    const fig = document.createElement("figure");
    const cap = document.createElement("figcaption");
    const img = document.createElement("img");
    img.alt = v.name;
    img.dataset.variant = v.name;
    cap.textContent = v.name + " ";
    const info = document.createElement("span");
    cap.appendChild(info);
    fig.append(cap, img);
    $("variants").appendChild(fig);
    const got = await fetch("/objects/" + encodeURIComponent(v.key), { headers: authHeaders() });
    if (got.ok) await showImage(img, info, await got.blob());
    else info.textContent = await explain(got);
  }
}

// setFocus takes a click on the original as the focal point of a cover
// crop, in fractions of its width and height.
function setFocus(event) {
  const img = event.currentTarget, r = img.getBoundingClientRect();
  if (!img.naturalWidth) return;
  const fx = Math.min(1, Math.max(0, (event.clientX - r.left) / r.width));
  const fy = Math.min(1, Math.max(0, (event.clientY - r.top) / r.height));
  $("focus").value = fx.toFixed(3) + "," + fy.toFixed(3);
  $("gravity").value = "focus";
  $("fit").value = "cover";
  $("more").open = true;
}

document.addEventListener("DOMContentLoaded", () => {
  $("original").addEventListener("click", setFocus);
  $("apikey").value = sessionStorage.getItem("resizer-api-key") || "";
  dropZone("resize-drop", "resize-file", (f) => showImage($("original"), $("original-info"), f));
  dropZone("upload-drop", "upload-file", () => say("upload-message", ""));
  $("resize-form").addEventListener("submit", (e) => resize(e).catch((err) => say("resize-message", String(err), true)));
  $("upload-button").addEventListener("click", () => upload().catch((err) => say("upload-message", String(err), true)));
});
