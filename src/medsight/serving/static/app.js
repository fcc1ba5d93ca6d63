"use strict";
// The medsight page: send one file (or the files of one DICOM series) to POST /predict and draw what comes
// back, whatever the task; 3D inputs are shown in NiiVue (static/niivue.umd.js) with the predicted labels on top.

const $ = (id) => document.getElementById(id);
const el = (tag, text) => { const node = document.createElement(tag); if (text !== undefined) node.textContent = text; return node; };
let images = {};
let viewer = null;  // the NiiVue instance, made on the first 3D answer
let classNames = [];

async function loadModel() {
  try {
    const response = await fetch("/model");
    const model = await response.json();
    const parts = [model.task, (model.models || []).join(" + "), model.engine];
    if (model.classes && model.classes.length) parts.push("classes: " + model.classes.join(", "));
    classNames = model.classes || [];
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

async function upload(files) {
  files = Array.from(files || []);
  if (!files.length) return;
  const what = files.length === 1 ? files[0].name : files.length + " files";
  setState("busy", "predicting " + what + " …");
  $("summary").replaceChildren();
  $("viewer").hidden = true;
  $("volume-viewer").hidden = true;
  const form = new FormData();
  for (const file of files) form.append("file", file, file.name);
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
    await showVolumes(body.volumes);
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
  $("picture").src = images[label][0];
}

function base64Of(dataUrl) { return dataUrl.slice(dataUrl.indexOf(",") + 1); }

// label k gets the k-th of these colours (background transparent), the same order as the PNG overlays
const LABEL_COLOURS = [[230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48], [145, 30, 180],
  [70, 240, 240], [240, 50, 230]];

function labelColourmap(count) {
  const map = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: ["background"] };
  for (let k = 1; k <= count; k++) {
    const [r, g, b] = LABEL_COLOURS[(k - 1) % LABEL_COLOURS.length];
    map.R.push(r); map.G.push(g); map.B.push(b); map.A.push(255); map.I.push(k);
    map.labels.push(classNames.length > count ? classNames[k] : "label " + k);
  }
  return map;
}

async function showVolumes(volumes) {
  if (!volumes || !volumes.image) return;
  $("volume-viewer").hidden = false;
  if (!viewer) {
    viewer = new niivue.Niivue({ backColor: [0, 0, 0, 1], show3Dcrosshair: true, loadingText: "",
      crosshairColor: [1, 1, 0, 0.6] });
    await viewer.attachTo("gl");
    viewer.setInterpolation(true);  // nearest voxel: labels and small volumes are shown as they are
    window.medsightViewer = viewer;  // for scripts and tests driving the page
    viewer.onLocationChange = () => syncSliceSlider();
  }
  while (viewer.volumes.length) viewer.removeVolume(viewer.volumes[viewer.volumes.length - 1]);
  const image = await niivue.NVImage.loadFromBase64({ base64: base64Of(volumes.image), name: "image.nii.gz" });
  viewer.addVolume(image);
  $("opacity-control").hidden = !volumes.mask;
  if (volumes.mask) {
    const mask = await niivue.NVImage.loadFromBase64({ base64: base64Of(volumes.mask), name: "mask.nii.gz",
      opacity: Number($("opacity").value) });
    mask.setColormapLabel(labelColourmap(Math.max(1, Math.round(mask.global_max))));
    viewer.addVolume(mask);
  }
  setWindowFrom(image);
  setPlane($("plane").value);
}

// window/level sliders run over the image's whole range; they start at NiiVue's robust range
function setWindowFrom(image) {
  const low = image.global_min, high = image.global_max, span = Math.max(high - low, 1e-6);
  const toSlider = (v) => String(Math.round(1000 * (v - low) / span));
  $("window").value = toSlider(low + (image.cal_max - image.cal_min));
  $("level").value = toSlider((image.cal_min + image.cal_max) / 2);
  const apply = () => {
    const width = Math.max(span * Number($("window").value) / 1000, span / 1000);
    const centre = low + span * Number($("level").value) / 1000;
    image.cal_min = centre - width / 2;
    image.cal_max = centre + width / 2;
    viewer.updateGLVolume();
    $("window-label").textContent = "window " + width.toPrecision(4) + " · level " + centre.toPrecision(4);
  };
  $("window").oninput = apply;
  $("level").oninput = apply;
  apply();
}

const PLANE_AXIS = { axial: 2, coronal: 1, sagittal: 0, multiplanar: 2, render: 2 };

function setPlane(plane) {
  const types = { axial: viewer.sliceTypeAxial, coronal: viewer.sliceTypeCoronal, sagittal: viewer.sliceTypeSagittal,
    multiplanar: viewer.sliceTypeMultiplanar, render: viewer.sliceTypeRender };
  viewer.setSliceType(types[plane]);
  syncSliceSlider();
}

function syncSliceSlider() {
  if (!viewer) return;
  $("volume-slice").value = String(Math.round(1000 * viewer.scene.crosshairPos[PLANE_AXIS[$("plane").value]]));
}

$("plane").addEventListener("change", () => setPlane($("plane").value));
$("volume-slice").addEventListener("input", () => {
  const position = viewer.scene.crosshairPos;
  position[PLANE_AXIS[$("plane").value]] = Number($("volume-slice").value) / 1000;
  viewer.drawScene();
});
$("opacity").addEventListener("input", () => {
  if (viewer && viewer.volumes.length > 1) viewer.setOpacity(1, Number($("opacity").value));
});

const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  upload(event.dataTransfer.files);
});
$("file").addEventListener("change", (event) => upload(event.target.files));
loadModel();
