"use strict";
// The medsight page: send one file to POST /predict and draw what comes back, whatever the task.

const $ = (id) => document.getElementById(id);
const el = (tag, text) => { const node = document.createElement(tag); if (text !== undefined) node.textContent = text; return node; };
let images = {};

async function loadModel() {
  try {
    const response = await fetch("/model");
    const model = await response.json();
    const parts = [model.task, (model.models || []).join(" + "), model.engine];
    if (model.classes && model.classes.length) parts.push("classes: " + model.classes.join(", "));
    const test = (model.metrics || {}).test;
    if (test && test.auc !== undefined && test.auc !== null) parts.push("test AUC " + Number(test.auc).toFixed(3));
    $("model-info").textContent = parts.filter(Boolean).join(" · ");
  } catch (error) {
    $("model-info").textContent = "model information unavailable";
  }
}

function setState(state, message, isError) {
  $("result").dataset.state = state;
  $("status").textContent = message || "";
  $("status").className = isError ? "error" : "";
}

async function upload(file) {
  if (!file) return;
  setState("busy", "predicting " + file.name + " …");
  $("summary").replaceChildren();
  $("viewer").hidden = true;
  const form = new FormData();
  form.append("file", file, file.name);
  form.append("explain", $("explain").checked ? "true" : "false");
  try {
    const response = await fetch("/predict", { method: "POST", body: form });
    const body = await response.json().catch(() => ({ detail: response.statusText }));
    $("json").textContent = JSON.stringify(body.prediction || body, null, 2);
    if (!response.ok) {
      setState("error", "refused (" + response.status + "): " + (body.detail || "unknown error"), true);
      return;
    }
    render(body);
    setState("done", body.file + " · " + body.task + " · " + Number(body.seconds).toFixed(2) + " s");
  } catch (error) {
    setState("error", "the server could not be reached: " + error, true);
  }
}

function render(body) {
  const prediction = body.prediction || {};
  const summary = $("summary");
  if (prediction.class !== undefined) summary.append(el("p", prediction.class || "(no label)"));
  if (summary.lastChild) summary.lastChild.className = "decision";
  if (prediction.probabilities) summary.append(probabilityTable(prediction.probabilities));
  if (prediction.operating_point) summary.append(el("p", "operating point: " + prediction.operating_point));
  for (const [key, value] of Object.entries(prediction)) {
    if (["class", "probabilities", "operating_point"].includes(key)) continue;
    if (isBoxList(value)) summary.append(el("p", key + ":"), boxTable(value));
    else if (value === null || typeof value !== "object") summary.append(el("p", key + ": " + value));
    else if (!Array.isArray(value) && Object.values(value).every((v) => typeof v === "number")) {
      summary.append(el("p", key + ": " + Object.entries(value).map(([k, v]) => k + " " + Number(v).toPrecision(4)).join(", ")));
    }
  }
  images = body.images || {};
  const tabs = $("tabs");
  tabs.replaceChildren();
  const labels = Object.keys(images).filter((label) => images[label].length > 0);
  labels.forEach((label) => {
    const button = el("button", label);
    button.type = "button";
    button.setAttribute("role", "tab");
    button.addEventListener("click", () => show(label));
    tabs.append(button);
  });
  $("viewer").hidden = labels.length === 0;
  if (labels.length) show(labels[0]);
}

function probabilityTable(probabilities) {
  const table = el("table");
  table.className = "probs";
  for (const [name, p] of Object.entries(probabilities)) {
    const row = table.insertRow();
    row.insertCell().textContent = name;
    const bar = el("div");
    bar.className = "bar";
    bar.style.width = Math.round(100 * p) + "%";
    row.insertCell().append(bar);
    row.insertCell().textContent = Number(p).toFixed(3);
  }
  return table;
}

function isBoxList(value) {
  return Array.isArray(value) && value.length > 0 && value[0] !== null && typeof value[0] === "object"
    && ("bbox" in value[0] || "box" in value[0]);
}

function boxTable(boxes) {
  const table = el("table");
  table.className = "boxes";
  for (const box of boxes) {
    const row = table.insertRow();
    row.insertCell().textContent = box.category !== undefined ? box.category : (box.label !== undefined ? box.label : box.category_id);
    row.insertCell().textContent = box.score !== undefined ? Number(box.score).toFixed(3) : "";
    row.insertCell().textContent = JSON.stringify(box.box || box.bbox || []);
  }
  return table;
}

function show(label) {
  for (const button of $("tabs").children) button.setAttribute("aria-selected", String(button.textContent === label));
  const list = images[label];
  const slider = $("slice");
  slider.max = String(list.length - 1);
  slider.value = String(Math.floor((list.length - 1) / 2));
  slider.oninput = () => { $("picture").src = list[Number(slider.value)]; $("slice-label").textContent = "slice " + (Number(slider.value) + 1) + " / " + list.length; };
  $("slices").hidden = list.length < 2;
  slider.oninput();
}

const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  upload(event.dataTransfer.files[0]);
});
$("file").addEventListener("change", (event) => upload(event.target.files[0]));
loadModel();
