// SyNDGAN defect studio: vanilla JS, no library, nothing fetched from outside this server.
// The drawing is a list of operations (polygon / brush / eraser) in native image pixels; the server
// rasterizes it (the preview here is only a preview) and returns results by id.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { info: null, image: null, ops: [], current: null, zoom: 1, result: null, painting: false };
const base = $("base"), overlay = $("overlay");

function showError(msg) {
  const el = $("error");
  el.textContent = msg || "";
  el.hidden = !msg;
}
function status(msg) { $("status").textContent = msg || ""; }

async function api(path, options) {
  const res = await fetch(path, options);
  const type = res.headers.get("content-type") || "";
  const body = type.includes("json") ? await res.json() : null;
  if (!res.ok) throw new Error((body && body.error) || `${path}: HTTP ${res.status}`);
  return body;
}
function post(path, obj) {
  return api(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(obj) });
}

function classColour(name) {
  const c = state.info.classes.find((c) => c.name === name);
  return c ? `rgb(${c.color.join(",")})` : "#fff";
}

// ----------------------------------------------------------------- library
async function loadInfo() {
  state.info = await api("/api/info");
  const cls = $("class");
  for (const c of state.info.classes) cls.add(new Option(`${c.id} ${c.name}`, c.name));
  for (const name of state.info.checkpoints) $("checkpoint").add(new Option(name, name));
  $("scorer").textContent = state.info.scorer ? `score: ${state.info.scorer}` : "no scorer";
  $("variants").max = state.info.max_variants;
  updateSwatch();
}

async function loadGallery() {
  const gallery = $("gallery");
  gallery.textContent = "";
  const { images } = await api(`/api/images?split=${encodeURIComponent($("split").value)}`);
  for (const im of images) {
    const img = document.createElement("img");
    img.src = `/api/thumb?id=${encodeURIComponent(im.id)}`;
    img.title = `${im.id} (${im.width}x${im.height}, ${im.split})`;
    img.dataset.id = im.id;
    img.loading = "lazy";
    img.onclick = () => chooseImage(im.id, im.id, img);
    gallery.appendChild(img);
  }
  if (!images.length) gallery.textContent = "no normal images in this split";
}

function chooseImage(id, name, thumb) {
  document.querySelectorAll("#gallery img.chosen").forEach((e) => e.classList.remove("chosen"));
  if (thumb) thumb.classList.add("chosen");
  const img = new Image();
  img.onload = () => {
    state.image = { id, name, el: img, width: img.naturalWidth, height: img.naturalHeight };
    base.width = overlay.width = img.naturalWidth;
    base.height = overlay.height = img.naturalHeight;
    base.getContext("2d").drawImage(img, 0, 0);
    state.ops = [];
    state.current = null;
    zoomFit();
    $("image-name").textContent = `${name} (${img.naturalWidth}x${img.naturalHeight})`;
    status("draw the defect region, pick its class, then synthesize");
  };
  img.src = `/api/image?id=${encodeURIComponent(id)}`;
}

async function upload(file) {
  showError("");
  try {
    const res = await api(`/api/upload?name=${encodeURIComponent(file.name)}`, { method: "POST", body: file });
    chooseImage(res.id, res.name, null);
  } catch (e) { showError(e.message); }
}

// ----------------------------------------------------------------- drawing
function tool() { return document.querySelector("input[name=tool]:checked").value; }

function imagePoint(ev) {
  const r = overlay.getBoundingClientRect();
  const x = ((ev.clientX - r.left) * overlay.width) / r.width;
  const y = ((ev.clientY - r.top) * overlay.height) / r.height;
  return [Math.round(Math.min(Math.max(x, 0), overlay.width) * 4) / 4, Math.round(Math.min(Math.max(y, 0), overlay.height) * 4) / 4];
}

function redraw() {
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, overlay.width, overlay.height);
  const all = state.current ? [...state.ops, state.current] : state.ops;
  for (const op of all) {
    ctx.globalCompositeOperation = op.tool === "eraser" ? "destination-out" : "source-over";
    ctx.fillStyle = ctx.strokeStyle = op.tool === "eraser" ? "#000" : classColour(op.class);
    ctx.beginPath();
    if (op.tool === "polygon") {
      op.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (op.closed) ctx.fill();
      ctx.lineWidth = Math.max(0.5, 1 / state.zoom);
      ctx.stroke();
    } else {
      ctx.lineWidth = 2 * op.radius;
      ctx.lineCap = ctx.lineJoin = "round";
      op.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
      if (op.points.length === 1) ctx.arc(op.points[0][0], op.points[0][1], op.radius, 0, 2 * Math.PI);
      op.points.length === 1 ? ctx.fill() : ctx.stroke();
    }
  }
  ctx.globalCompositeOperation = "source-over";
}

function closePolygon() {
  const op = state.current;
  if (!op || op.tool !== "polygon") return;
  if (op.points.length < 3) { showError("polygon: needs at least 3 points"); return; }
  op.closed = true;
  state.ops.push(op);
  state.current = null;
  redraw();
}

overlay.addEventListener("mousedown", (ev) => {
  if (!state.image || ev.button !== 0) return;
  const p = imagePoint(ev);
  const t = tool();
  if (t === "polygon") {
    if (!state.current || state.current.tool !== "polygon") state.current = { tool: "polygon", class: $("class").value, points: [] };
    state.current.points.push(p);
  } else {
    state.current = { tool: t, points: [p], radius: Number($("radius").value) };
    if (t === "brush") state.current.class = $("class").value;
    state.painting = true;
  }
  redraw();
});
overlay.addEventListener("mousemove", (ev) => {
  if (!state.painting || !state.current) return;
  state.current.points.push(imagePoint(ev));
  redraw();
});
window.addEventListener("mouseup", () => {
  if (!state.painting) return;
  state.painting = false;
  state.ops.push(state.current);
  state.current = null;
  redraw();
});
overlay.addEventListener("dblclick", (ev) => {
  // the double-click's two mousedowns added the same point twice: drop the repeat
  const op = state.current;
  if (op && op.tool === "polygon" && op.points.length > 1) {
    const [a, b] = op.points.slice(-2);
    if (a[0] === b[0] && a[1] === b[1]) op.points.pop();
  }
  closePolygon();
  ev.preventDefault();
});
window.addEventListener("keydown", (ev) => {
  if (ev.key === "Enter") closePolygon();
  if (ev.key === "Escape") { state.current = null; redraw(); }
});

function setZoom(z) {
  state.zoom = Math.min(Math.max(z, 0.125), 64);
  for (const c of [base, overlay]) {
    c.style.width = `${base.width * state.zoom}px`;
    c.style.height = `${base.height * state.zoom}px`;
  }
  $("zoom-level").textContent = `${+state.zoom.toFixed(3)}x`;
  redraw();
}
function zoomFit() {
  const wrap = $("canvas-wrap");
  const z = Math.min((wrap.clientWidth - 4) / base.width, (window.innerHeight * 0.6) / base.height);
  setZoom(z >= 1 ? Math.floor(z) : 2 ** Math.floor(Math.log2(z)));
}

function updateSwatch() { $("swatch").style.background = classColour($("class").value); }

// ----------------------------------------------------------------- synthesis
async function synthesize() {
  showError("");
  if (!state.image) { showError("image: choose or upload a normal image first"); return; }
  if (state.current && state.current.tool === "polygon") closePolygon();
  const ops = state.ops.map(({ tool, points, radius, class: cls }) => ({ tool, points, radius, class: cls }));
  const req = {
    image: state.image.id,
    ops,
    variants: Number($("variants").value),
    jitter: Number($("jitter").value),
    seed: Number($("seed").value),
    checkpoint: $("checkpoint").value,
  };
  $("synthesize").disabled = true;
  status("synthesizing...");
  try {
    const res = await post("/api/synthesize", req);
    showResults(res);
    status(`${res.results.length} variant(s) in ${res.results.reduce((s, r) => s + r.ms, 0).toFixed(0)} ms`);
  } catch (e) {
    showError(e.message);
    status("");
  } finally {
    $("synthesize").disabled = false;
  }
}

function scaled(img, w, h) {
  const z = Math.max(1, Math.min(state.zoom, 360 / Math.max(w, h)));
  img.style.width = `${w * z}px`;
  img.style.height = `${h * z}px`;
}

function showResults(res) {
  const { width: w, height: h } = state.image;
  $("results").hidden = false;
  for (const id of ["input-img", "before-img"]) { $(id).src = state.image.el.src; scaled($(id), w, h); }
  $("mask-img").src = `/api/mask/${res.mask}.png`;
  scaled($("mask-img"), w, h);
  scaled($("result-img"), w, h);
  const list = $("variants-list");
  list.textContent = "";
  res.results.forEach((r, i) => {
    const card = document.createElement("div");
    card.className = "variant";
    card.dataset.id = r.id;
    const img = document.createElement("img");
    img.src = `/api/result/${r.id}.png`;
    scaled(img, w, h);
    img.onclick = () => pickResult(r, card);
    const score = r.score === null || r.score === undefined ? "no scorer" : `score ${r.score.toFixed(3)}`;
    const text = document.createElement("div");
    text.textContent = `seed ${r.seed}, jitter ${r.jitter} px, ${score}, ${r.ms} ms`;
    const save = document.createElement("button");
    save.textContent = "save";
    save.className = "save";
    save.onclick = () => saveResult(r.id);
    card.append(img, text, save);
    list.appendChild(card);
    if (i === 0) pickResult(r, card);
  });
}

function pickResult(r, card) {
  document.querySelectorAll(".variant.chosen").forEach((e) => e.classList.remove("chosen"));
  card.classList.add("chosen");
  state.result = r;
  $("result-img").src = `/api/result/${r.id}.png`;
}

function applyCompare() {
  // the slider uncovers the result from the left: 100 = all result, 0 = all input
  $("result-img").style.clipPath = `inset(0 ${100 - Number($("compare").value)}% 0 0)`;
}

async function saveResult(id) {
  showError("");
  try {
    const res = await post("/api/save", { result: id });
    $("saved").textContent = `saved ${res.image} + ${res.json}`;
    status(`saved ${res.name}`);
  } catch (e) { showError(e.message); }
}

// ----------------------------------------------------------------- wiring
$("split").onchange = () => loadGallery().catch((e) => showError(e.message));
$("upload").onchange = (ev) => ev.target.files[0] && upload(ev.target.files[0]);
$("class").onchange = updateSwatch;
$("close-poly").onclick = closePolygon;
$("undo").onclick = () => { if (state.current) state.current = null; else state.ops.pop(); redraw(); };
$("clear").onclick = () => { state.ops = []; state.current = null; redraw(); };
$("zoom-in").onclick = () => setZoom(state.zoom * 2);
$("zoom-out").onclick = () => setZoom(state.zoom / 2);
$("zoom-fit").onclick = zoomFit;
$("canvas-wrap").addEventListener("wheel", (ev) => {
  if (!ev.ctrlKey) return;
  ev.preventDefault();
  setZoom(state.zoom * (ev.deltaY < 0 ? 2 : 0.5));
}, { passive: false });
$("synthesize").onclick = synthesize;
$("compare").oninput = applyCompare;
$("toggle").onclick = () => { $("compare").value = Number($("compare").value) > 50 ? 0 : 100; applyCompare(); };

loadInfo().then(loadGallery).then(() => status("pick a normal image or upload one")).catch((e) => showError(e.message));
