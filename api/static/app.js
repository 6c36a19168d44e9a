// scenechain gallery: vanilla JS, no build step.
// Auth: a pasted bearer token, kept in localStorage and sent as "Authorization: Bearer ..." on every
// API call. Images are fetched with that header and shown through blob: URLs (an <img src> can't
// send headers). Live progress reads the SSE stream with fetch() for the same reason, resuming with
// Last-Event-ID, and falls back to polling the status when the server has no events endpoint.
(() => {
  "use strict";

  const TOKEN_KEY = "scenechain.token";
  const PAGE_SIZE = 20;
  const POLL_MS = 3000;
  const FINISHED = ["completed", "failed", "cancelled"];
  const SCORE_KEYS = [["pickscore", "PickScore"], ["clip", "CLIP"], ["vqa", "VQA"], ["aesthetic", "Aesthetic"]];
  // The API lives beside /ui (same origin, same route prefix).
  const API_ROOT = location.pathname.replace(/\/ui(\/.*)?$/, "").replace(/\/$/, "");

  const state = {
    token: localStorage.getItem(TOKEN_KEY) || "",
    listOffset: 0,
    genId: null,
    status: null,
    live: null, // {abort: AbortController, poller: interval id}
    sceneSigs: new Map(),
    blobs: new Map(), // API path -> Promise<blob: URL>
    refreshTimer: null,
  };

  // -- tiny DOM helpers ---------------------------------------------------------------------------

  const $ = (selector, root = document) => root.querySelector(selector);

  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") el.className = value;
      else if (key === "dataset") Object.assign(el.dataset, value);
      else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else el.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  const fmt = (value, digits = 1) => (value === null || value === undefined ? "n/a" : Number(value).toFixed(digits));

  function flash(message) {
    const box = $("#flash");
    box.textContent = message || "";
    box.hidden = !message;
  }

  // -- API ----------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(ApiError.messageOf(detail) || `HTTP ${status}`);
      this.status = status;
      this.detail = detail;
    }
    static messageOf(detail) {
      if (typeof detail === "string") return detail;
      if (Array.isArray(detail)) return detail.map((e) => (e && e.msg) || JSON.stringify(e)).join("; ");
      return detail ? JSON.stringify(detail) : "";
    }
    get messages() {
      return Array.isArray(this.detail) ? this.detail.map((e) => (e && e.msg) || String(e)) : [this.message];
    }
  }

  function authHeaders(extra = {}) {
    return { Authorization: `Bearer ${state.token}`, ...extra };
  }

  async function apiFetch(path, options = {}) {
    const response = await fetch(API_ROOT + path, { ...options, headers: authHeaders(options.headers || {}) });
    if (response.status === 401) {
      const detail = await response.json().then((b) => b.detail).catch(() => "unauthorized");
      signOut(`Your token was refused: ${ApiError.messageOf(detail)}. Paste a valid one.`);
      throw new ApiError(401, detail);
    }
    if (!response.ok) {
      let detail = response.statusText;
      try {
        const body = await response.json();
        detail = body.detail !== undefined ? body.detail : body;
      } catch (_) { /* not JSON */ }
      const error = new ApiError(response.status, detail);
      error.retryAfter = response.headers.get("Retry-After");
      throw error;
    }
    return response;
  }

  const apiJson = async (path, options) => (await apiFetch(path, options)).json();

  function blobUrl(path) {
    if (!state.blobs.has(path)) {
      const promise = apiFetch(path).then((r) => r.blob()).then((b) => URL.createObjectURL(b));
      promise.catch(() => state.blobs.delete(path)); // retry on the next render
      state.blobs.set(path, promise);
    }
    return state.blobs.get(path);
  }

  function authImage(path, attrs) {
    const img = h("img", { alt: "", ...attrs, "data-src": path, loading: "lazy" });
    blobUrl(path).then((url) => { img.src = url; img.dataset.loaded = "1"; }).catch(() => { img.dataset.loaded = "error"; });
    return img;
  }

  // -- auth ---------------------------------------------------------------------------------------

  function tokenSubject(token) {
    try {
      const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(payload)).sub || "";
    } catch (_) {
      return "";
    }
  }

  function signOut(message) {
    stopLive();
    state.token = "";
    localStorage.removeItem(TOKEN_KEY);
    for (const promise of state.blobs.values()) promise.then((url) => URL.revokeObjectURL(url)).catch(() => {});
    state.blobs.clear();
    state.sceneSigs.clear();
    show("login");
    $("#nav").hidden = true;
    const error = $("#login-error");
    error.textContent = message || "";
    error.hidden = !message;
  }

  async function signIn(event) {
    event.preventDefault();
    const token = $("#token-input").value.trim().replace(/^Bearer\s+/i, "");
    if (!token) return;
    state.token = token;
    try {
      await apiJson("/api/generations?limit=1");
    } catch (error) {
      if (error.status !== 401) signOut(`Could not check the token: ${error.message}`);
      return;
    }
    localStorage.setItem(TOKEN_KEY, token);
    $("#token-input").value = "";
    $("#login-error").hidden = true;
    route();
  }

  // -- routing ------------------------------------------------------------------------------------

  function show(name) {
    for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
    document.body.dataset.view = name;
  }

  function route() {
    flash("");
    if (!state.token) {
      signOut("");
      return;
    }
    $("#nav").hidden = false;
    $("#whoami").textContent = tokenSubject(state.token);
    const hash = location.hash || "#/";
    const match = hash.match(/^#\/g\/([A-Za-z0-9_-]+)/);
    if (match) {
      if (state.genId !== match[1]) openStoryboard(match[1]);
      show("storyboard");
      return;
    }
    stopLive();
    state.genId = null;
    if (hash.startsWith("#/new")) {
      show("new");
      $("#prompt").focus();
    } else {
      show("list");
      loadList(state.listOffset);
    }
  }

  // -- list ---------------------------------------------------------------------------------------

  async function loadList(offset) {
    let page;
    try {
      page = await apiJson(`/api/generations?limit=${PAGE_SIZE}&offset=${offset}`);
    } catch (error) {
      if (error.status !== 401) flash(`Could not load your storyboards: ${error.message}`);
      return;
    }
    state.listOffset = page.offset;
    const body = $("#generations tbody");
    body.replaceChildren(
      ...page.items.map((item) =>
        h(
          "tr",
          { dataset: { id: item.id, status: item.status }, onclick: () => { location.hash = `#/g/${item.id}`; } },
          h("td", {}, h("span", { class: `status ${item.status}` }, item.status)),
          h("td", {}, h("a", { href: `#/g/${item.id}` }, item.prompt.length > 90 ? `${item.prompt.slice(0, 89)}…` : item.prompt)),
          h("td", {}, `${item.scenes_done}/${item.scenes_total}`),
          h("td", {}, item.advanced_image_generation_used ? "advanced" : "simple"),
          h("td", {}, new Date(item.created_at).toLocaleString()),
        ),
      ),
    );
    $("#list-empty").hidden = page.items.length > 0;
    $("#prev-page").disabled = page.offset === 0;
    $("#next-page").disabled = page.offset + page.items.length >= page.total;
    $("#page-info").textContent = page.total ? `${page.offset + 1}–${page.offset + page.items.length} of ${page.total}` : "";
  }

  // -- submit form --------------------------------------------------------------------------------

  const ADVANCED_FIELDS = ["advanced_image_num_variations", "advanced_image_quality_threshold", "advanced_image_max_enhancement_iterations"];

  function syncAdvanced() {
    const on = $("#use_advanced_image_generation").checked;
    for (const id of ADVANCED_FIELDS) $(`#${id}`).disabled = !on;
  }

  function formBody() {
    const body = { prompt: $("#prompt").value.trim() };
    const number = (id) => {
      const raw = $(`#${id}`).value.trim();
      return raw === "" ? null : Number(raw);
    };
    body.num_scenes = number("num_scenes");
    const seed = number("seed");
    if (seed !== null) body.seed = seed;
    const negative = $("#negative_prompt").value.trim();
    if (negative) body.negative_prompt = negative;
    body.use_advanced_image_generation = $("#use_advanced_image_generation").checked;
    if (body.use_advanced_image_generation) {
      for (const id of ADVANCED_FIELDS) {
        const value = number(id);
        if (value !== null) body[id] = value;
      }
    }
    if (body.num_scenes === null) delete body.num_scenes;
    return body;
  }

  async function submitBrief(event) {
    event.preventDefault();
    const errors = $("#form-errors");
    errors.hidden = true;
    const body = formBody();
    if (!body.prompt) {
      errors.replaceChildren(h("li", {}, "Write a brief first."));
      errors.hidden = false;
      return;
    }
    const button = $("#generate-submit");
    button.disabled = true;
    try {
      const accepted = await apiJson("/api/generate", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      $("#prompt").value = "";
      location.hash = `#/g/${accepted.id}`;
    } catch (error) {
      if (error.status === 401) return;
      const retry = error.retryAfter ? ` (retry after ${error.retryAfter}s)` : "";
      errors.replaceChildren(...error.messages.map((m) => h("li", {}, m + retry)));
      errors.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  // -- storyboard ---------------------------------------------------------------------------------

  function openStoryboard(id) {
    stopLive();
    state.genId = id;
    state.status = null;
    state.sceneSigs.clear();
    $("#storyboard").dataset.status = "";
    $("#storyboard").dataset.id = id;
    $("#scenes").replaceChildren();
    $("#chain").replaceChildren();
    $("#event-log").replaceChildren();
    $("#sb-warnings").replaceChildren();
    $("#sb-title").textContent = `Storyboard ${id.slice(0, 8)}`;
    $("#events-source").textContent = "";
    loadStatus().then(() => {
      if (state.genId === id) startLive(id);
    });
  }

  async function loadStatus() {
    const id = state.genId;
    if (!id) return;
    try {
      const status = await apiJson(`/api/status/${id}`);
      if (state.genId !== id) return;
      state.status = status;
      renderStoryboard(status);
    } catch (error) {
      if (error.status === 404) flash(`Storyboard ${id} not found.`);
      else if (error.status !== 401) flash(`Could not load the storyboard: ${error.message}`);
    }
  }

  function scheduleRefresh(delay = 250) {
    if (state.refreshTimer) return;
    state.refreshTimer = setTimeout(() => {
      state.refreshTimer = null;
      loadStatus();
    }, delay);
  }

  function renderStoryboard(s) {
    const root = $("#storyboard");
    const finished = FINISHED.includes(s.status);
    $("#sb-status").textContent = s.status;
    $("#sb-status").className = `status ${s.status}`;
    $("#sb-brief").textContent = s.prompt;
    const plan = s.storyboard_plan;
    const settings = plan ? plan.advanced_image_settings : null;
    const mode = s.advanced_image_generation_used
      ? `advanced${settings ? ` · ${settings.num_variations} variations · threshold ${settings.quality_threshold} · ≤${settings.max_enhancement_iterations} enhancer iterations` : ""}`
      : "simple";
    $("#sb-meta").textContent = `${mode} · seed ${s.seed} · created ${new Date(s.created_at).toLocaleString()}`;
    const total = Math.max(1, s.progress.scenes_total);
    $("#sb-progress").max = total;
    $("#sb-progress").value = s.progress.scenes_done;
    $("#sb-stage").textContent = `${s.progress.scenes_done}/${s.progress.scenes_total} scenes · ${s.progress.stage}`;
    $("#sb-actions").hidden = s.scenes.length === 0 && finished;
    $("#export-sheet").disabled = s.scenes.length === 0;
    $("#export-animatic").disabled = s.scenes.length === 0;
    $("#cancel-generation").hidden = finished;
    $("#sb-warnings").replaceChildren(...s.warnings.map((w) => h("li", {}, w)));
    $("#sb-error").textContent = s.error || "";
    $("#sb-error").hidden = !s.error;

    const planned = plan ? plan.scenes : [];
    const count = Math.max(s.progress.scenes_total, planned.length, s.scenes.length);
    const byIndex = new Map(s.scenes.map((scene) => [scene.index, scene]));
    renderChain(s, count, byIndex);
    const container = $("#scenes");
    for (let n = 1; n <= count; n += 1) {
      const done = byIndex.get(n) || null;
      const quality = s.image_quality_scores[`scene_${n}`] || null;
      const plannedScene = planned.find((p) => p.index === n) || null;
      const current = !done && s.progress.stage.startsWith(`scene ${n}:`) ? s.progress.stage : "";
      const sig = JSON.stringify([done, quality, plannedScene, current, s.status]);
      let section = container.querySelector(`.scene[data-scene="${n}"]`);
      if (section && state.sceneSigs.get(n) === sig) continue;
      const fresh = renderScene(s, n, plannedScene, done, quality, current);
      if (section) {
        // keep an open trace open across re-renders
        const openTrace = section.querySelector("details.trace[open]");
        if (openTrace) fresh.querySelector("details.trace").open = true;
        section.replaceWith(fresh);
      } else {
        container.append(fresh);
      }
      state.sceneSigs.set(n, sig);
    }
    for (const extra of container.querySelectorAll(".scene")) {
      if (Number(extra.dataset.scene) > count) extra.remove();
    }
    // Set last, once the DOM shows the status (tests wait on this attribute).
    root.dataset.scenesDone = String(s.progress.scenes_done);
    root.dataset.status = s.status;
  }

  function renderChain(s, count, byIndex) {
    const items = [];
    for (let n = 1; n <= count; n += 1) {
      const done = byIndex.get(n);
      if (n > 1) {
        const chained = done && done.reference_from === n - 1;
        items.push(h("span", { class: "arrow", title: chained ? `scene ${n} was generated from scene ${n - 1}'s image` : "next scene" }, "→"));
      }
      items.push(
        h(
          "a",
          { class: `thumb ${done ? "done" : "pending"}`, href: `#/g/${s.id}`, dataset: { scene: n }, onclick: (e) => { e.preventDefault(); const el = $(`.scene[data-scene="${n}"]`); if (el) el.scrollIntoView({ behavior: "smooth" }); } },
          done ? authImage(done.image_url, { alt: `scene ${n}` }) : h("div", { class: "ph" }),
          h("div", {}, `Scene ${n}`),
        ),
      );
    }
    $("#chain").replaceChildren(...items);
  }

  function renderScene(s, n, planned, done, quality, current) {
    const below = quality && quality.below_threshold;
    const head = h(
      "div",
      { class: "scene-head" },
      h("h2", {}, `Scene ${n}`),
      done ? h("span", { class: "status completed" }, "done") : h("span", { class: "status running" }, current ? current.replace(/^scene \d+:\s*/, "") : FINISHED.includes(s.status) ? "not generated" : "waiting"),
      below ? h("span", { class: "badge-below", title: `best overall ${fmt(quality.best_overall)} is below the quality threshold` }, "below threshold") : null,
    );
    const section = h("section", { class: "scene", id: `scene-${n}`, dataset: { scene: n, done: done ? "1" : "0", belowThreshold: below ? "1" : "0" } }, head);
    if (done && done.reference_from) {
      section.append(h("p", { class: "chain-link" }, `⬇ chained: generated from scene ${done.reference_from}'s image`));
    }
    const promptText = planned ? planned.prompt : done ? done.prompt : "";
    const info = h(
      "div",
      { class: "scene-info" },
      promptText ? [h("div", { class: "prompt-label" }, "Planned prompt"), h("p", { class: "prompt" }, promptText)] : null,
      planned && planned.shot_notes ? [h("div", { class: "prompt-label" }, "Shot notes"), h("p", { class: "prompt" }, planned.shot_notes)] : null,
      done && done.enhanced_prompt ? [h("div", { class: "prompt-label" }, "Enhanced prompt"), h("p", { class: "prompt enhanced" }, done.enhanced_prompt)] : null,
      done
        ? h("p", { class: "muted" }, `kept variation ${done.best_index} of ${done.num_variations}` + (quality && quality.best_overall !== null && quality.best_overall !== undefined ? ` · overall ${fmt(quality.best_overall)}` : "") + (done.seeds.length ? ` · seeds ${done.seeds.join(", ")}` : ""))
        : null,
      quality && quality.scorers_failed && Object.keys(quality.scorers_failed).length
        ? h("p", { class: "muted" }, `scorers failed: ${Object.entries(quality.scorers_failed).map(([k, v]) => `${k} (${v})`).join(", ")}`)
        : null,
    );
    const body = h("div", { class: "scene-body" }, done ? authImage(done.image_url, { class: "best", alt: `scene ${n}, best image` }) : h("div", { class: "muted" }, "No image yet."), info);
    section.append(body);
    if (done && done.num_variations > 1) section.append(renderVariations(s, n, done, quality));
    if (done || s.advanced_image_generation_used) section.append(renderTraceToggle(s.id, n));
    return section;
  }

  function renderVariations(s, n, done, quality) {
    const perImage = (quality && quality.per_image) || [];
    const cards = [];
    for (let k = 1; k <= done.num_variations; k += 1) {
      const scores = perImage[k - 1] || null;
      const best = k === done.best_index;
      const rows = scores
        ? [
            ...SCORE_KEYS.map(([key, label]) => h("tr", {}, h("td", {}, label), h("td", { class: "num" }, fmt(scores[key])))),
            h("tr", { class: "overall" }, h("td", {}, "Overall"), h("td", { class: "num" }, fmt(scores.overall))),
          ]
        : [h("tr", {}, h("td", { class: "muted" }, "unscored"))];
      cards.push(
        h(
          "figure",
          { class: `variation${best ? " best" : ""}`, dataset: { k, overall: scores ? scores.overall : "" } },
          authImage(`/api/generations/${s.id}/scenes/${n}/variations/${k}`, { alt: `scene ${n}, variation ${k}` }),
          h("figcaption", {}, `#${k}`, done.seeds[k - 1] !== undefined ? ` · seed ${done.seeds[k - 1]}` : "", " ", best ? h("span", { class: "badge-best" }, "best") : null),
          h("table", {}, h("tbody", {}, rows)),
        ),
      );
    }
    return h("div", { class: "variations", "aria-label": `variations of scene ${n}` }, cards);
  }

  function renderTraceToggle(id, n) {
    const details = h("details", { class: "trace", dataset: { scene: n } }, h("summary", {}, "Enhancement trace"), h("div", { class: "trace-body muted" }, "Loading…"));
    details.addEventListener("toggle", () => {
      if (details.open && !details.dataset.loaded) loadTrace(id, n, details);
    });
    return details;
  }

  async function loadTrace(id, n, details) {
    const target = details.querySelector(".trace-body");
    try {
      const trace = await apiJson(`/api/generations/${id}/scenes/${n}/trace`);
      target.replaceWith(renderTrace(trace));
      details.dataset.loaded = "1";
    } catch (error) {
      target.textContent = error.status === 404 ? "No trace for this scene (yet)." : `Could not load the trace: ${error.message}`;
    }
  }

  function renderTrace(trace) {
    const steps = [h("li", { class: "step" }, h("div", { class: "step-label" }, "Original prompt"), h("pre", {}, trace.original_prompt || "—"))];
    for (const it of trace.iterations || []) {
      const scores = it.scores || {};
      steps.push(
        h(
          "li",
          { class: "step", dataset: { iteration: it.iteration } },
          h("div", { class: "step-label" }, `Cinematographer rewrite ${it.iteration}`),
          h("pre", {}, it.rewrite || "—"),
          h(
            "div",
            { class: "scores" },
            `Critic: overall ${fmt(it.overall)}`,
            Object.keys(scores).length ? ` — ${Object.entries(scores).map(([k, v]) => `${k.replace(/_/g, " ")} ${fmt(v, 0)}`).join(", ")}` : "",
          ),
          it.feedback ? h("div", { class: "scores" }, `Feedback: ${it.feedback}`) : null,
          it.critic_text ? h("pre", { class: "critic" }, it.critic_text) : null,
        ),
      );
    }
    steps.push(h("li", { class: "step" }, h("div", { class: "step-label" }, "Final prompt"), h("pre", {}, trace.final_prompt || trace.original_prompt || "—")));
    const summary = trace.summary || {};
    const notes = [];
    if (summary.stop_reason) notes.push(`stopped: ${summary.stop_reason}`);
    if (summary.approved !== undefined) notes.push(summary.approved ? "approved by the critic" : "not approved");
    if (summary.degraded) notes.push("degraded (LLM failure)");
    if (!(trace.iterations || []).length && !trace.final_prompt) notes.push("no enhancement (simple mode)");
    return h("div", { class: "trace-body" }, h("ol", {}, steps), notes.length ? h("p", { class: "muted" }, notes.join(" · ")) : null);
  }

  // -- live events --------------------------------------------------------------------------------

  function describe(event) {
    const d = event.data || {};
    const scene = event.scene ? `scene ${event.scene} · ` : "";
    switch (event.type) {
      case "stage": return `${d.label || d.stage}`;
      case "enhancer_iteration": return `${scene}rewrite ${d.iteration} · critic ${fmt(d.overall)}${d.approved ? " · approved" : ""}`;
      case "variation_scored": {
        const s = d.scores || {};
        return `${scene}variation ${d.k} scored ${fmt(s.overall)} (${SCORE_KEYS.map(([k, l]) => `${l} ${fmt(s[k], 0)}`).join(", ")})`;
      }
      case "best_picked": return `${scene}best: variation ${d.k} (${fmt(d.overall)})${d.below_threshold ? " · BELOW THRESHOLD" : ""}`;
      case "warning": return `${scene}warning: ${d.message}`;
      case "scene_done": return `${scene}done (${d.scenes_done}/${d.scenes_total})`;
      case "error": return `error: ${d.message}`;
      case "done": return `finished: ${d.status}`;
      default: return event.type;
    }
  }

  function onEvent(event) {
    if (event.generation_id !== state.genId) return;
    const log = $("#event-log");
    log.append(h("li", { class: event.type, dataset: { type: event.type, seq: event.seq || "" } }, describe(event)));
    log.scrollTop = log.scrollHeight;
    // A late-delivered stage event must not overwrite a finished status.
    const finished = state.status && FINISHED.includes(state.status.status);
    if (event.type === "stage" && event.data && !finished) $("#sb-stage").textContent = `${state.status ? `${state.status.progress.scenes_done}/${state.status.progress.scenes_total} scenes · ` : ""}${event.data.label || event.data.stage}`;
    scheduleRefresh(event.type === "done" ? 0 : 300);
  }

  // Reads an SSE response body; returns the id of the last event seen and whether "done" came.
  async function readSse(response, lastId, dispatch) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let fields = { event: "", data: [], id: null };
    let sawDone = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (fields.data.length) {
            if (fields.id) lastId = fields.id;
            try {
              const event = JSON.parse(fields.data.join("\n"));
              dispatch(event);
              if (event.type === "done") sawDone = true;
            } catch (_) { /* not an event */ }
          }
          fields = { event: "", data: [], id: null };
          if (sawDone) {
            reader.cancel().catch(() => {});
            return { lastId, sawDone };
          }
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const name = colon < 0 ? line : line.slice(0, colon);
        const val = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (name === "data") fields.data.push(val);
        else if (name === "event") fields.event = val;
        else if (name === "id") fields.id = val;
      }
    }
    return { lastId, sawDone };
  }

  async function streamEvents(id, signal) {
    let lastId = null;
    let failures = 0;
    while (!signal.aborted && failures < 8) {
      let response;
      try {
        response = await fetch(`${API_ROOT}/api/generations/${id}/events`, {
          headers: authHeaders({ Accept: "text/event-stream", ...(lastId ? { "Last-Event-ID": lastId } : {}) }),
          signal,
          cache: "no-store",
        });
      } catch (_) {
        failures += 1;
        await sleep(1000 * failures, signal);
        continue;
      }
      if (response.status === 404 || response.status === 405) {
        const body = await response.json().catch(() => ({}));
        if (response.status === 405 || body.detail === "Not Found") return "unavailable";
        return "not-found";
      }
      if (response.status === 401) {
        signOut("Your token was refused. Paste a valid one.");
        return "unauthorized";
      }
      if (!response.ok || !response.body) {
        failures += 1;
        await sleep(1000 * failures, signal);
        continue;
      }
      $("#events-source").textContent = "(live)";
      try {
        const result = await readSse(response, lastId, onEvent);
        lastId = result.lastId;
        if (result.sawDone) return "done";
        failures = 0;
      } catch (_) {
        if (signal.aborted) return "aborted";
        failures += 1;
      }
      await sleep(500, signal);
    }
    return signal.aborted ? "aborted" : "gave-up";
  }

  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      if (signal) signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
    });
  }

  function startLive(id) {
    stopLive();
    const abort = new AbortController();
    // Polling is the safety net: it covers a server without an events endpoint and missed events.
    const poller = setInterval(() => {
      if (state.status && FINISHED.includes(state.status.status)) {
        clearInterval(poller);
        return;
      }
      loadStatus();
    }, POLL_MS);
    state.live = { abort, poller };
    if (state.status && FINISHED.includes(state.status.status)) {
      // Finished already: replay the logged events once for the record.
      streamEvents(id, abort.signal).then(() => { $("#events-source").textContent = "(finished)"; });
      return;
    }
    streamEvents(id, abort.signal).then((outcome) => {
      if (outcome === "unavailable") $("#events-source").textContent = "(polling: this server has no event stream)";
      else if (outcome === "done") $("#events-source").textContent = "(finished)";
      loadStatus();
    });
  }

  function stopLive() {
    if (!state.live) return;
    state.live.abort.abort();
    clearInterval(state.live.poller);
    state.live = null;
  }

  // -- exports & cancel ---------------------------------------------------------------------------

  async function downloadExport(name, filename, button) {
    const id = state.genId;
    button.disabled = true;
    try {
      const response = await apiFetch(`/api/generations/${id}/export/${name}`);
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = h("a", { href: url, download: `${id}_${filename}` });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10000);
      button.dataset.bytes = String(blob.size);
    } catch (error) {
      if (error.status !== 401) flash(error.status === 404 && error.message === "Not Found" ? "This server has no exports." : `Export failed: ${error.message}`);
    } finally {
      button.disabled = false;
    }
  }

  async function cancelGeneration() {
    try {
      state.status = await apiJson(`/api/generations/${state.genId}/cancel`, { method: "POST" });
      renderStoryboard(state.status);
    } catch (error) {
      if (error.status !== 401) flash(`Cancel failed: ${error.message}`);
    }
  }

  // -- wiring -------------------------------------------------------------------------------------

  $("#login-form").addEventListener("submit", signIn);
  $("#logout").addEventListener("click", () => signOut(""));
  $("#generate-form").addEventListener("submit", submitBrief);
  $("#use_advanced_image_generation").addEventListener("change", syncAdvanced);
  $("#prev-page").addEventListener("click", () => loadList(Math.max(0, state.listOffset - PAGE_SIZE)));
  $("#next-page").addEventListener("click", () => loadList(state.listOffset + PAGE_SIZE));
  $("#export-sheet").addEventListener("click", (e) => downloadExport("contact-sheet.png", "contact_sheet.png", e.currentTarget));
  $("#export-animatic").addEventListener("click", (e) => downloadExport("animatic.mp4", "animatic.mp4", e.currentTarget));
  $("#cancel-generation").addEventListener("click", cancelGeneration);
  window.addEventListener("hashchange", route);
  syncAdvanced();
  route();
  document.body.dataset.ready = "1";
})();
