// The playground: submits through the tutorial's API (POST /api/text2image), one request per
// image so each appears as soon as it is done; keeps a gallery of this browser's images in
// localStorage. No dependencies, no inline script (the page's CSP forbids it).
"use strict";

const GALLERY_KEY = "t2i-playground-gallery";
const GALLERY_MAX = 24;
const STATUS_EVERY_MS = 5000;

const $ = (id) => document.getElementById(id);

function el(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  Object.assign(node, props);
  for (const child of children) node.append(child);
  return node;
}

// ---- server status -------------------------------------------------------------------------

let limitsApplied = false;

function applyLimits(limits) {
  if (limitsApplied) return;
  limitsApplied = true;
  $("steps").max = String(limits.maxSteps);
  $("steps").value = String(limits.defaultSteps);
  $("number").max = String(limits.maxImagesPerRequest);
  $("prompt").maxLength = limits.maxPromptChars;
  $("negative-prompt").maxLength = limits.maxPromptChars;
  const size = $("size");
  const current = size.value;
  size.replaceChildren(
    ...limits.sizes.map((s) => el("option", { value: s, textContent: s.replace("x", " × ") })),
  );
  if (limits.sizes.includes(current)) size.value = current;
}

async function refreshStatus() {
  try {
    const response = await fetch("/api/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const s = await response.json();
    $("status-model").textContent = s.model;
    $("status-ready").textContent = s.ready ? "ready" : "loading the model";
    $("status-backend").textContent = s.backend
      ? `${s.backend} (${s.dtype}, ${s.threads} threads)`
      : "–";
    $("status-cpu").textContent = s.cpu.model;
    $("status-isa").textContent = s.cpu.isa.length ? s.cpu.isa.join(", ") : "no AMX/AVX-512";
    $("status-queue").textContent = `${s.queue.depth} of ${s.queue.max} waiting`;
    applyLimits(s.limits);
  } catch (error) {
    $("status-ready").textContent = `unreachable (${error.message})`;
  }
}

// ---- gallery (this browser only) -----------------------------------------------------------

function loadGallery() {
  try {
    const entries = JSON.parse(localStorage.getItem(GALLERY_KEY) || "[]");
    return Array.isArray(entries) ? entries : [];
  } catch {
    return [];
  }
}

function saveGallery(entries) {
  try {
    localStorage.setItem(GALLERY_KEY, JSON.stringify(entries.slice(0, GALLERY_MAX)));
  } catch {
    // storage full or disabled: the gallery is a convenience, generation still works
  }
}

function forget(url) {
  saveGallery(loadGallery().filter((entry) => entry.url !== url));
}

function renderGallery() {
  const items = loadGallery().map((entry) => {
    const img = el("img", { src: entry.url, alt: entry.prompt, loading: "lazy" });
    // Images expire on the server (retention): drop the ones that are gone.
    img.addEventListener("error", () => {
      forget(entry.url);
      img.closest("li")?.remove();
    });
    const caption = el("figcaption", {
      textContent: `${entry.prompt.slice(0, 80)} · seed ${entry.seed}`,
    });
    return el("li", {}, [el("figure", {}, [el("a", { href: entry.url }, [img]), caption])]);
  });
  $("gallery").replaceChildren(...items);
}

// ---- generation ----------------------------------------------------------------------------

function imagePath(url) {
  // Same-origin path only: the page never loads an image from elsewhere.
  return new URL(url, window.location.href).pathname;
}

async function errorText(response) {
  let message = response.statusText;
  try {
    const body = await response.json();
    message = body.message || body.error?.message || message;
  } catch {
    // not JSON (a proxy's page): the status line says enough
  }
  const retry = response.headers.get("Retry-After");
  const hint = retry ? ` Retry after ${retry} s.` : "";
  const sentence = /[.!?]$/.test(message) ? message : `${message}.`;
  return `Error ${response.status}: ${sentence}${hint}`;
}

async function generateOne(body) {
  let response;
  try {
    response = await fetch("/api/text2image", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
  } catch (error) {
    throw new Error(`Could not reach the server (${error.message}).`);
  }
  if (!response.ok) throw new Error(await errorText(response));
  return response.json();
}

function showError(text) {
  $("error").textContent = text;
  $("error").hidden = !text;
}

function readForm() {
  const number = Number($("number").value);
  const max = Number($("number").max) || 16;
  if (!Number.isInteger(number) || number < 1 || number > max) {
    throw new Error(`Number of images: must be a whole number between 1 and ${max}.`);
  }
  const seedText = $("seed").value.trim();
  const body = {
    prompt: $("prompt").value,
    negative_prompt: $("negative-prompt").value,
    size: $("size").value,
    step: Number($("steps").value),
    number: 1,
  };
  // The server validates everything else and names the field it rejects.
  const seed = seedText === "" ? null : Number(seedText);
  return { body, number, seed };
}

function pendingItem(index, number) {
  const figure = el("figure", {}, [
    el("span", { textContent: `Generating image ${index + 1} of ${number}…` }),
  ]);
  return el("li", { className: "pending" }, [figure]);
}

function resultFigure(result, prompt) {
  const out = result.output[0];
  const url = imagePath(out.url);
  const input = result.meta.input;
  const img = el("img", { src: url, alt: `Generated image: ${prompt}` });
  const caption = el("figcaption", {
    textContent: `${out.latencySeconds.toFixed(2)} s · seed ${input.seed} · ${input.size}, ${input.step} steps`,
  });
  caption.append(" · ", el("a", { href: url, download: "", textContent: "download" }));
  return {
    figure: el("figure", {}, [img, caption]),
    entry: { url, prompt, seed: input.seed, size: input.size, at: Date.now() },
  };
}

async function onSubmit(event) {
  event.preventDefault();
  showError("");
  let request;
  try {
    request = readForm();
  } catch (error) {
    showError(error.message);
    return;
  }
  const { body, number, seed } = request;
  const button = $("generate");
  button.disabled = true;
  $("message").textContent = `Generating ${number} image${number > 1 ? "s" : ""}…`;
  const started = performance.now();
  const errors = new Set();
  const items = Array.from({ length: number }, (_, i) => pendingItem(i, number));
  $("results").replaceChildren(...items);
  let done = 0;
  await Promise.all(
    items.map(async (item, i) => {
      const payload = seed === null ? body : { ...body, seed: seed + i };
      try {
        const result = await generateOne(payload);
        const { figure, entry } = resultFigure(result, body.prompt);
        item.className = "done";
        item.replaceChildren(figure);
        saveGallery([entry, ...loadGallery()]);
        renderGallery();
        done += 1;
      } catch (error) {
        item.remove();
        errors.add(error.message);
        showError([...errors].join("\n"));
      }
    }),
  );
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  $("message").textContent = `${done} of ${number} image${number > 1 ? "s" : ""} done in ${seconds} s.`;
  button.disabled = false;
  refreshStatus();
}

function init() {
  $("generate-form").addEventListener("submit", onSubmit);
  // Ctrl/Cmd+Enter in the prompt submits, as in most chat boxes.
  $("prompt").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      $("generate-form").requestSubmit();
    }
  });
  $("clear-gallery").addEventListener("click", () => {
    saveGallery([]);
    renderGallery();
  });
  renderGallery();
  refreshStatus();
  setInterval(() => {
    if (!document.hidden) refreshStatus();
  }, STATUS_EVERY_MS);
}

init();
